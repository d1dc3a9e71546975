// Package addrfile maintains the POP address file (the JSON cmd/pop
// writes with --addr-file, read by the load tool and the player) from
// separate processes: each of cmd/edge, cmd/shield and cmd/origin started
// with -addr-file adds its own entry, so a POP of separate processes has
// one file without a step to assemble it.
//
// The file is shared by processes starting at the same time: Add holds an
// exclusive flock(2) on "<file>.lock" while it reads, merges and
// atomically replaces the file.
package addrfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"syscall"

	"github.com/musiccdn/cdn/atomicfile"
)

// File is the address file: where a POP's nodes are, and the demo
// credentials to use it. It is the one definition of the file's JSON:
// cmd/pop writes it (pop.Addrs is this type), separate nodes add their
// entries with Add, and the load tool and the player read it with Read.
type File struct {
	// Origin is the origin's public API base URL (players).
	Origin string `json:"origin"`
	// Shields are the shields' fill listeners (/media/, tier credential
	// required).
	Shields []string `json:"shields"`
	// Edges are the edges' public base URLs (players' /a/ paths).
	Edges []string `json:"edges"`
	// Kafka is the broker of the plays pipeline, host:port.
	Kafka string `json:"kafka,omitempty"`
	// Internal are the internal listeners, where /metrics and the other
	// internal paths are served. Empty: a POP without the split (the load
	// tool's null POP), whose public URLs serve /metrics.
	Internal Internal `json:"internal"`
	// AdminToken opens the origin's admin API (purges, takedowns) on its
	// internal listener: Authorization: Bearer <admin_token>.
	AdminToken string `json:"admin_token,omitempty"`
	// Users are demo users of the POP's demo identity provider with their
	// bearer tokens (cmd/pop's, or those `origin demo-identity` printed,
	// as bench/chaos.sh writes them).
	Users []User `json:"users,omitempty"`
	// LicenceKey is the base64 Ed25519 public key offline licences are
	// signed with, for players to pin.
	LicenceKey string `json:"licence_key,omitempty"`
}

// Internal are the base URLs of the nodes' internal listeners: the
// origin's /media/, /v1/snapshot, /v1/rights/, /v1/admin/, /metrics and
// /v1/royalties/; the edges' /peer/media/; every edge's and shield's
// /admin/, /metrics and /debug/pprof/. (A shield's /media/ fills are on
// its public fill listener, Shields above.)
type Internal struct {
	Origin  string   `json:"origin"`
	Edges   []string `json:"edges"`
	Shields []string `json:"shields"`
}

// User is a demo user and its bearer token.
type User struct {
	UserID  string `json:"user_id"`
	Country string `json:"country"`
	Token   string `json:"token"`
}

// Read parses the address file at path. It checks only that it is JSON of
// the file's shape; Check says whether it names a POP to play from.
func Read(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("addrfile: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return File{}, fmt.Errorf("addrfile: %s: %w", path, err)
	}
	return f, nil
}

// Check reports an error unless the file names an origin and at least one
// edge.
func (f File) Check() error {
	if f.Origin == "" || len(f.Edges) == 0 {
		return errors.New("addrfile: need an origin and at least one edge")
	}
	return nil
}

// UserIn returns the first user of country cc.
func (f File) UserIn(cc string) (User, bool) {
	for _, u := range f.Users {
		if u.Country == cc {
			return u, true
		}
	}
	return User{}, false
}

// MetricsURLs are the base URLs whose /metrics to scrape: the internal
// listeners where the file names them, else the public ones.
func (f File) MetricsURLs() (origin string, edges, shields []string) {
	origin, edges, shields = f.Origin, f.Edges, f.Shields
	if f.Internal.Origin != "" {
		origin = f.Internal.Origin
	}
	if len(f.Internal.Edges) > 0 {
		edges = f.Internal.Edges
	}
	if len(f.Internal.Shields) > 0 {
		shields = f.Internal.Shields
	}
	return origin, edges, shields

}

// Write writes f to path all at once (atomicfile), so a reader never sees
// half of it. The file is readable by all (0644), as the processes of a
// POP may run as different users.
func Write(path string, f File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("addrfile: %w", err)
	}
	err = atomicfile.Write(path, func(tmp *os.File) error {
		if err := tmp.Chmod(0o644); err != nil {
			return err
		}
		_, err := tmp.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("addrfile: %w", err)
	}
	return nil
}

// Entry is one node's addresses.
type Entry struct {
	Role     string // "edge", "shield" or "origin"
	Public   string // base URL of the public listener (a shield's: its fill listener)
	Internal string // base URL of the internal listener
	Kafka    string // origin only: the plays broker, host:port
}

// Add merges e into the file at path, creating it if needed. An edge or
// shield already listed (same public URL, as after a restart on fixed
// ports) keeps its place; the origin's entry replaces the previous one.
func Add(path string, e Entry) error {
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("addrfile: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("addrfile: lock %s: %w", path, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	var f File
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("addrfile: %w", err)
	case len(b) > 0:
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("addrfile: %s: %w", path, err)
		}
	}
	if err := f.add(e); err != nil {
		return err
	}
	return Write(path, f)
}

func (f *File) add(e Entry) error {
	pair := func(pub, in *[]string) {
		if i := slices.Index(*pub, e.Public); i >= 0 {
			if i < len(*in) {
				(*in)[i] = e.Internal
			}
			return
		}
		*pub = append(*pub, e.Public)
		*in = append(*in, e.Internal)
	}
	switch e.Role {
	case "edge":
		pair(&f.Edges, &f.Internal.Edges)
	case "shield":
		pair(&f.Shields, &f.Internal.Shields)
	case "origin":
		f.Origin, f.Internal.Origin, f.Kafka = e.Public, e.Internal, e.Kafka
	default:
		return fmt.Errorf("addrfile: role %q", e.Role)
	}
	return nil
}
