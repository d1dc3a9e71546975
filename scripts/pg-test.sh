#!/usr/bin/env bash
# pg-test.sh: a throwaway PostgreSQL cluster for the ledger tests.
#
#   source scripts/pg-test.sh        start (or reuse) a cluster, export
#                                    PLAYS_TEST_PG_DSN, stop it when the
#                                    sourcing shell exits
#   scripts/pg-test.sh run CMD...    start, run CMD with PLAYS_TEST_PG_DSN
#                                    set, stop; exits with CMD's status
#   scripts/pg-test.sh start         start (or reuse), print
#                                    "export PLAYS_TEST_PG_DSN=..." and leave it
#                                    running
#   scripts/pg-test.sh stop          stop the cluster and remove its directory
#   scripts/pg-test.sh restart       start the cluster again on the same data
#                                    directory and port after its server died
#                                    (the plays fault test SIGKILLs it)
#
# Besides PLAYS_TEST_PG_DSN it exports PLAYS_TEST_PG_DATA, the data
# directory (postmaster.pid is there), and PLAYS_TEST_PG_STATE, the state
# file "restart" reads.
#
# It installs PostgreSQL with apt-get when no server binaries are found.
# The cluster lives in a temp directory, listens on 127.0.0.1 only, on a
# free port in 20000-40000, with trust authentication, fsync off (test data
# only). Running twice reuses the running cluster (state in
# ${PG_TEST_STATE:-/tmp/musiccdn-pg-test.state}).

_pgt_state=${PG_TEST_STATE:-/tmp/musiccdn-pg-test.state}

_pgt_bindir() {
	local d
	if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v pg_ctl)"
		return 0
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

_pgt_install() {
	if _pgt_bindir >/dev/null; then
		return 0
	fi
	echo "pg-test: installing postgresql with apt-get" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 ||
		{ echo "pg-test: apt-get install postgresql failed" >&2; return 1; }
	_pgt_bindir >/dev/null
}

# _pgt_as runs a command as the cluster owner: postgres refuses to run as root.
_pgt_as() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$_pgt_user" -- "$@"
	else
		"$@"
	fi
}

_pgt_free_port() {
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

_pgt_running() {
	[ -f "$_pgt_state" ] || return 1
	local dir port user bindir
	read -r dir port user bindir <"$_pgt_state" || return 1
	[ -d "$dir" ] || return 1
	_pgt_user=$user
	_pgt_as "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || return 1
	PLAYS_TEST_PG_DSN="postgres://$user@127.0.0.1:$port/postgres?sslmode=disable"
	PLAYS_TEST_PG_DATA="$dir/data"
	return 0
}

# _pgt_server starts the server of an initialised cluster.
_pgt_server() {
	local bindir=$1 dir=$2 port=$3
	_pgt_as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		start >/dev/null
}

# _pgt_restart starts the recorded cluster again after its server died,
# retrying while the killed server's backends still hold its shared memory.
_pgt_restart() {
	[ -f "$_pgt_state" ] || { echo "pg-test: no cluster recorded in $_pgt_state" >&2; return 1; }
	local dir port user bindir i
	read -r dir port user bindir <"$_pgt_state"
	_pgt_user=$user
	for i in $(seq 1 60); do
		if _pgt_as "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
			return 0
		fi
		_pgt_server "$bindir" "$dir" "$port" && return 0
		sleep 1
	done
	echo "pg-test: restart failed:" >&2
	tail -20 "$dir/server.log" >&2
	return 1
}

_pgt_start() {
	_pgt_started=0
	PLAYS_TEST_PG_STATE=$_pgt_state
	export PLAYS_TEST_PG_STATE
	if _pgt_running; then
		export PLAYS_TEST_PG_DSN PLAYS_TEST_PG_DATA
		return 0
	fi
	_pgt_install || return 1
	local bindir dir port
	bindir=$(_pgt_bindir) || return 1
	_pgt_user=$(id -un)
	if [ "$(id -u)" -eq 0 ]; then
		_pgt_user=postgres
		id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres || return 1
	fi
	dir=$(mktemp -d /tmp/musiccdn-pg.XXXXXX) || return 1
	chmod 755 "$dir"
	[ "$(id -u)" -eq 0 ] && chown "$_pgt_user" "$dir"
	port=$(_pgt_free_port) || { echo "pg-test: no free port" >&2; return 1; }
	_pgt_as "$bindir/initdb" -D "$dir/data" -U "$_pgt_user" -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
		{ echo "pg-test: initdb failed:" >&2; cat "$dir/initdb.log" >&2; return 1; }
	_pgt_server "$bindir" "$dir" "$port" ||
		{ echo "pg-test: postgres failed to start:" >&2; cat "$dir/server.log" >&2; return 1; }
	echo "$dir $port $_pgt_user $bindir" >"$_pgt_state"
	_pgt_started=1
	PLAYS_TEST_PG_DSN="postgres://$_pgt_user@127.0.0.1:$port/postgres?sslmode=disable"
	PLAYS_TEST_PG_DATA="$dir/data"
	export PLAYS_TEST_PG_DSN PLAYS_TEST_PG_DATA
	echo "pg-test: postgres on 127.0.0.1:$port (data $dir)" >&2
}

_pgt_stop() {
	[ -f "$_pgt_state" ] || return 0
	local dir port user bindir
	read -r dir port user bindir <"$_pgt_state"
	_pgt_user=$user
	if [ -n "$dir" ] && [ -d "$dir" ]; then
		_pgt_as "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
		rm -rf "$dir"
	fi
	rm -f "$_pgt_state"
	unset PLAYS_TEST_PG_DSN PLAYS_TEST_PG_DATA
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
	# Sourced: start and export into the caller, and stop when it exits
	# unless the cluster was already running (then its starter stops it).
	if _pgt_start && [ "$_pgt_started" = 1 ]; then
		trap _pgt_stop EXIT
	fi
else
	set -u
	case "${1:-}" in
	start)
		_pgt_start || exit 1
		echo "export PLAYS_TEST_PG_DSN='$PLAYS_TEST_PG_DSN' PLAYS_TEST_PG_DATA='$PLAYS_TEST_PG_DATA' PLAYS_TEST_PG_STATE='$PLAYS_TEST_PG_STATE'"
		;;
	restart)
		_pgt_restart || exit 1
		;;
	stop)
		_pgt_stop
		;;
	run)
		shift
		_pgt_start || exit 1
		[ "$_pgt_started" = 1 ] && trap _pgt_stop EXIT
		"$@"
		exit $?
		;;
	*)
		sed -n '2,27p' "$0" >&2
		exit 2
		;;
	esac
fi
