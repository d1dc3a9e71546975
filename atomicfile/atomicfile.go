// Package atomicfile replaces a file all at once: the new content is
// written to a temporary file in the same directory, synced, and renamed
// over the old one, so a reader (or a process restarted after a crash)
// sees the old file or the new one, never a part of either.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write makes path hold what write writes to f (a new temporary file;
// write may seek in it). On any error the temporary
// file is removed and path is left as it was.
func Write(path string, write func(f *os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("atomicfile: %s: %w", filepath.Base(path), err)
	}
	return nil
}

// WriteBytes makes path hold b.
func WriteBytes(path string, b []byte) error {
	return Write(path, func(f *os.File) error {
		_, err := f.Write(b)
		return err
	})
}
