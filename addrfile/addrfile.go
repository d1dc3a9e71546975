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
	"path/filepath"
	"slices"
	"syscall"
)

// File is the address file's shape (the same as pop.Addrs).
type File struct {
	Origin   string   `json:"origin"`
	Shields  []string `json:"shields"`
	Edges    []string `json:"edges"`
	Kafka    string   `json:"kafka,omitempty"`
	Internal Internal `json:"internal"`
	// Users are the demo users with their bearer tokens (written by
	// whoever made the identity, e.g. bench/chaos.sh from `origin
	// demo-identity`): kept as they are.
	Users json.RawMessage `json:"users,omitempty"`
}

// Internal are the internal listeners' base URLs.
type Internal struct {
	Origin  string   `json:"origin"`
	Edges   []string `json:"edges"`
	Shields []string `json:"shields"`
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
	out, _ := json.MarshalIndent(f, "", "  ")
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("addrfile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("addrfile: %w", err)
	}
	return nil
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
