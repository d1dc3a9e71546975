package cache

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Disk is a chunk tier on local disk, under the memory: a shield keeps far
// more of the catalog than fits in RAM, and keeps it across restarts. Each
// chunk is one file, named by its key, holding a header (magic, key,
// length, xxhash of the bytes) before the bytes, so a torn or corrupted file
// is detected and dropped instead of served. An in-memory index keeps the
// files in LRU order within a byte budget; it is rebuilt from the directory
// at start. Writes are asynchronous and bounded: when the disk falls
// behind, chunks are not written (they stay in memory), never queued
// without bound. Records that change (objects' metadata, Put) share the
// format and the index, and have a queue of their own that is served
// first. Disk is safe for concurrent use.
type Disk struct {
	dir    string
	budget int64

	mu    sync.Mutex
	used  int64
	items map[uint64]*diskEntry
	head  diskEntry // sentinel of the LRU list; head.next is the most recent

	writes chan diskWrite
	// records are Put writes (objects' metadata): small, one per object
	// filled, and what a warm restart needs most, so they have their own
	// queue, served first, and are not dropped behind a backlog of
	// chunks.
	records chan diskWrite
	wg      sync.WaitGroup
	closing sync.Once

	// Counters, read with atomic loads.
	Hits, Misses, Corrupt, Dropped, Written atomic.Int64
}

type diskEntry struct {
	key        uint64
	size       int64
	prev, next *diskEntry
}

type diskWrite struct {
	key     uint64
	data    []byte
	replace bool          // Put: overwrite what the key holds
	done    chan struct{} // a barrier: closed when the writer reaches it
}

const (
	diskMagic  = 0x6d63646e63686b31 // "mcdnchk1"
	diskHeader = 32
)

// OpenDisk opens (creating it if needed) a disk tier of budget bytes in
// dir, indexing the chunk files already there, oldest first.
func OpenDisk(dir string, budget int64) (*Disk, error) {
	if budget <= 0 {
		return nil, fmt.Errorf("cache: disk budget %d", budget)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: disk: %w", err)
	}
	d := &Disk{dir: dir, budget: budget, items: map[uint64]*diskEntry{},
		writes: make(chan diskWrite, 1024), records: make(chan diskWrite, 8192)}
	d.head.next, d.head.prev = &d.head, &d.head
	if err := d.scan(); err != nil {
		return nil, err
	}
	d.wg.Add(1)
	go d.writer()
	return d, nil
}

// Get returns the chunk under key, reading and verifying its file.
func (d *Disk) Get(key uint64) ([]byte, bool) {
	d.mu.Lock()
	e := d.items[key]
	if e != nil {
		d.unlinkLocked(e)
		d.pushFrontLocked(e)
	}
	d.mu.Unlock()
	if e == nil {
		d.Misses.Add(1)
		return nil, false
	}
	b, err := os.ReadFile(d.path(key))
	if err == nil {
		if data, ok := decodeChunk(b, key); ok {
			d.Hits.Add(1)
			return data, true
		}
		d.Corrupt.Add(1)
	}
	d.Del(key)
	d.Misses.Add(1)
	return nil, false
}

// Touch marks key as just used, without reading it: an object's
// metadata record is touched whenever one of its chunks is read or
// written, so it is not evicted before them (it is read only at a
// restart).
func (d *Disk) Touch(key uint64) {
	d.mu.Lock()
	if e := d.items[key]; e != nil {
		d.unlinkLocked(e)
		d.pushFrontLocked(e)
	}
	d.mu.Unlock()
}

// Has reports whether key is indexed, without reading it.
func (d *Disk) Has(key uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.items[key] != nil
}

// Set writes data under key in the background; it drops the write when
// the writer is behind. data must not be modified afterwards.
func (d *Disk) Set(key uint64, data []byte) {
	select {
	case d.writes <- diskWrite{key: key, data: data}:
	default:
		d.Dropped.Add(1)
	}
}

// Put is Set for a record that changes (an object's metadata): the
// write replaces what key holds. The file is replaced by a rename, so a
// reader sees the old record or the new one, never a mix.
func (d *Disk) Put(key uint64, data []byte) {
	select {
	case d.records <- diskWrite{key: key, data: data, replace: true}:
	default:
		d.Dropped.Add(1)
	}
}

// Del removes key.
func (d *Disk) Del(key uint64) {
	d.mu.Lock()
	e := d.items[key]
	if e != nil {
		d.removeLocked(e)
	}
	d.mu.Unlock()
	if e != nil {
		os.Remove(d.path(key))
	}
}

// Used is the bytes the tier holds.
func (d *Disk) Used() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used
}

// Close finishes the queued writes. Safe to call twice.
func (d *Disk) Close() {
	d.closing.Do(func() {
		close(d.writes)
		d.wg.Wait()
	})
}

// Flush waits until every write queued before it is on disk (for tests
// and orderly shutdown).
func (d *Disk) Flush() {
	done := make(chan struct{})
	d.writes <- diskWrite{done: done}
	<-done
}

func (d *Disk) writer() {
	defer d.wg.Done()
	for {
		d.drainRecords()
		select {
		case w := <-d.records:
			d.write(w.key, w.data, w.replace)
		case w, ok := <-d.writes:
			if !ok {
				d.drainRecords()
				return
			}
			if w.done != nil {
				// A barrier: the records queued before it too.
				d.drainRecords()
				close(w.done)
				continue
			}
			d.write(w.key, w.data, w.replace)
		}
	}
}

// drainRecords writes the queued records.
func (d *Disk) drainRecords() {
	for {
		select {
		case w := <-d.records:
			d.write(w.key, w.data, w.replace)
		default:
			return
		}
	}
}

func (d *Disk) write(key uint64, data []byte, replace bool) {
	if (!replace && d.Has(key)) || int64(len(data))+diskHeader > d.budget {
		return
	}
	p := d.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, encodeChunk(key, data), 0o644); err != nil {
		os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return
	}
	d.Written.Add(1)
	var evict []uint64
	d.mu.Lock()
	if e := d.items[key]; e != nil && replace {
		d.removeLocked(e)
	}
	d.addLocked(key, int64(len(data))+diskHeader)
	for d.used > d.budget && d.head.prev != &d.head {
		e := d.head.prev
		evict = append(evict, e.key)
		d.removeLocked(e)
	}
	d.mu.Unlock()
	for _, k := range evict {
		os.Remove(d.path(k))
	}
}

// scan indexes the chunk files in dir, least recently modified first, and
// removes leftover temporary files.
func (d *Disk) scan() error {
	type file struct {
		key  uint64
		size int64
		mod  int64
	}
	var files []file
	err := filepath.WalkDir(d.dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		if filepath.Ext(p) == ".tmp" {
			os.Remove(p)
			return nil
		}
		key, err := strconv.ParseUint(de.Name(), 16, 64)
		if err != nil || len(de.Name()) != 16 {
			return nil // not ours
		}
		fi, err := de.Info()
		if err != nil {
			return nil
		}
		files = append(files, file{key, fi.Size(), fi.ModTime().UnixNano()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: disk: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod < files[j].mod })
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range files {
		d.addLocked(f.key, f.size)
	}
	for d.used > d.budget && d.head.prev != &d.head {
		e := d.head.prev
		os.Remove(d.path(e.key))
		d.removeLocked(e)
	}
	return nil
}

// path spreads files over 256 directories by the key's low byte.
func (d *Disk) path(key uint64) string {
	name := fmt.Sprintf("%016x", key)
	return filepath.Join(d.dir, name[14:], name)
}

func (d *Disk) addLocked(key uint64, size int64) {
	if e := d.items[key]; e != nil {
		return
	}
	e := &diskEntry{key: key, size: size}
	d.items[key] = e
	d.used += size
	d.pushFrontLocked(e)
}

func (d *Disk) removeLocked(e *diskEntry) {
	d.unlinkLocked(e)
	delete(d.items, e.key)
	d.used -= e.size
}

func (d *Disk) unlinkLocked(e *diskEntry) { e.prev.next, e.next.prev = e.next, e.prev }

func (d *Disk) pushFrontLocked(e *diskEntry) {
	e.prev, e.next = &d.head, d.head.next
	d.head.next.prev = e
	d.head.next = e
}

func encodeChunk(key uint64, data []byte) []byte {
	b := make([]byte, diskHeader+len(data))
	binary.LittleEndian.PutUint64(b[0:], diskMagic)
	binary.LittleEndian.PutUint64(b[8:], key)
	binary.LittleEndian.PutUint64(b[16:], uint64(len(data)))
	binary.LittleEndian.PutUint64(b[24:], xxhash.Sum64(data))
	copy(b[diskHeader:], data)
	return b
}

func decodeChunk(b []byte, key uint64) ([]byte, bool) {
	if len(b) < diskHeader || binary.LittleEndian.Uint64(b[0:]) != diskMagic || binary.LittleEndian.Uint64(b[8:]) != key {
		return nil, false
	}
	n := binary.LittleEndian.Uint64(b[16:])
	data := b[diskHeader:]
	if uint64(len(data)) != n || binary.LittleEndian.Uint64(b[24:]) != xxhash.Sum64(data) {
		return nil, false
	}
	return data, true
}
