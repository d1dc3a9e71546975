package offline

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Container format (version 1), all integers little-endian:
//
//	0    4   magic "MOF1"
//	4    4   block size B (bytes, a multiple of 16)
//	8    8   plaintext size N
//	16   16  CTR initial counter block (random)
//	32   12  GCM nonce of the wrapped key
//	44   32  content key, AES-GCM-sealed under the licence's wrap key
//	         (additional data: the context string)
//	76   32  HMAC-SHA256 under the MAC key of bytes 0..75 and the context
//	108  N   ciphertext: AES-128-CTR of the plaintext under the content key
//	...  32 per block: HMAC-SHA256 under the MAC key of (block index,
//	         ciphertext block), one per B-byte block
//
// The MAC key is HMAC-SHA256(content key, "offline-mac-v1"). The context
// string names the track, tier and file kind, so files cannot be swapped.
// CTR lets any offset be decrypted alone: the counter of byte o is the
// initial block plus o/16; the per-block MACs give the integrity CTR lacks.
const (
	magic     = "MOF1"
	hdrLen    = 108
	macLen    = 32
	blockSize = 16 << 10
)

// ErrTampered means a file's bytes or header do not match their MACs.
var ErrTampered = errors.New("offline: file tampered with or corrupt")

type keys struct {
	block  cipher.Block
	mac    []byte
	iv     [16]byte
	size   int64
	bsize  int64
	blocks int64
}

func deriveMAC(content []byte) []byte {
	m := hmac.New(sha256.New, content)
	m.Write([]byte("offline-mac-v1"))
	return m.Sum(nil)
}

// encrypt writes the container for plaintext read from r (exactly size
// bytes) to w.
func encrypt(w io.WriteSeeker, r io.Reader, size int64, wrapKey []byte, context string) error {
	content := make([]byte, 16)
	rand.Read(content)
	k, err := newKeys(content, size, blockSize)
	if err != nil {
		return err
	}
	rand.Read(k.iv[:])
	hdr := make([]byte, hdrLen)
	copy(hdr, magic)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(k.bsize))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(size))
	copy(hdr[16:32], k.iv[:])
	rand.Read(hdr[32:44])
	wb, err := aes.NewCipher(wrapKey)
	if err != nil {
		return err
	}
	gcm, _ := cipher.NewGCM(wb)
	gcm.Seal(hdr[44:44], hdr[32:44], content, []byte(context))
	copy(hdr[76:], k.headerMAC(hdr[:76], context))
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	macs := make([]byte, 0, k.blocks*macLen)
	buf := make([]byte, k.bsize)
	for i := int64(0); i < k.blocks; i++ {
		n := min(k.bsize, size-i*k.bsize)
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return fmt.Errorf("offline: reading plaintext: %w", err)
		}
		k.ctr(i*k.bsize).XORKeyStream(buf[:n], buf[:n])
		macs = append(macs, k.blockMAC(i, buf[:n])...)
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
	}
	if n, _ := io.Copy(io.Discard, io.LimitReader(r, 1)); n != 0 {
		return errors.New("offline: plaintext longer than announced")
	}
	_, err = w.Write(macs)
	return err
}

func newKeys(content []byte, size, bsize int64) (*keys, error) {
	b, err := aes.NewCipher(content)
	if err != nil {
		return nil, err
	}
	return &keys{block: b, mac: deriveMAC(content), size: size, bsize: bsize, blocks: (size + bsize - 1) / bsize}, nil
}

// ctr returns a keystream positioned at plaintext offset off (a multiple
// of 16).
func (k *keys) ctr(off int64) cipher.Stream {
	var iv [16]byte
	hi := binary.BigEndian.Uint64(k.iv[:8])
	lo := binary.BigEndian.Uint64(k.iv[8:])
	add := uint64(off / 16)
	nlo := lo + add
	if nlo < lo {
		hi++
	}
	binary.BigEndian.PutUint64(iv[:8], hi)
	binary.BigEndian.PutUint64(iv[8:], nlo)
	return cipher.NewCTR(k.block, iv[:])
}

func (k *keys) blockMAC(i int64, ct []byte) []byte {
	m := hmac.New(sha256.New, k.mac)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	m.Write(b[:])
	m.Write(ct)
	return m.Sum(nil)
}

func (k *keys) headerMAC(hdr []byte, context string) []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write(hdr)
	m.Write([]byte(context))
	return m.Sum(nil)
}

// encFile reads a container: ReadAt decrypts any range, verifying the MAC
// of every block it touches.
type encFile struct {
	f *os.File
	k *keys
}

func openEnc(path string, wrapKey []byte, context string) (*encFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	ef, err := readHeader(f, wrapKey, context)
	if err != nil {
		f.Close()
		return nil, err
	}
	return ef, nil
}

func readHeader(f *os.File, wrapKey []byte, context string) (*encFile, error) {
	hdr := make([]byte, hdrLen)
	if _, err := f.ReadAt(hdr, 0); err != nil || string(hdr[:4]) != magic {
		return nil, ErrTampered
	}
	bsize := int64(binary.LittleEndian.Uint32(hdr[4:]))
	size := int64(binary.LittleEndian.Uint64(hdr[8:]))
	if bsize <= 0 || bsize%16 != 0 || bsize > 1<<24 || size < 0 || size > 1<<40 {
		return nil, ErrTampered
	}
	wb, err := aes.NewCipher(wrapKey)
	if err != nil {
		return nil, err
	}
	gcm, _ := cipher.NewGCM(wb)
	content, err := gcm.Open(nil, hdr[32:44], hdr[44:76], []byte(context))
	if err != nil {
		return nil, fmt.Errorf("%w: the licence's key does not open it", ErrTampered)
	}
	k, err := newKeys(content, size, bsize)
	if err != nil {
		return nil, err
	}
	copy(k.iv[:], hdr[16:32])
	if !hmac.Equal(k.headerMAC(hdr[:76], context), hdr[76:]) {
		return nil, ErrTampered
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() != hdrLen+size+k.blocks*macLen {
		return nil, fmt.Errorf("%w: wrong length", ErrTampered)
	}
	return &encFile{f: f, k: k}, nil
}

func (e *encFile) Size() int64 { return e.k.size }

// ReadAt decrypts len(p) bytes at plaintext offset off.
func (e *encFile) ReadAt(p []byte, off int64) (int, error) {
	k := e.k
	if off < 0 {
		return 0, errors.New("offline: negative offset")
	}
	if off >= k.size {
		return 0, io.EOF
	}
	n := 0
	var ct []byte
	for n < len(p) && off < k.size {
		i := off / k.bsize
		start := i * k.bsize
		blen := min(k.bsize, k.size-start)
		if cap(ct) < int(blen) {
			ct = make([]byte, blen)
		}
		ct = ct[:blen]
		if _, err := e.f.ReadAt(ct, hdrLen+start); err != nil {
			return n, fmt.Errorf("offline: %w", err)
		}
		var mac [macLen]byte
		if _, err := e.f.ReadAt(mac[:], hdrLen+k.size+i*macLen); err != nil {
			return n, fmt.Errorf("offline: %w", err)
		}
		if !hmac.Equal(k.blockMAC(i, ct), mac[:]) {
			return n, fmt.Errorf("%w: block %d", ErrTampered, i)
		}
		k.ctr(start).XORKeyStream(ct, ct)
		c := copy(p[n:], ct[off-start:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (e *encFile) Close() error { return e.f.Close() }

// rewrap re-seals the content key of the container at path from oldKey to
// newKey, rewriting only its header (in place, then fsync). A container
// already sealed under newKey is left as it is, so a rewrap interrupted by
// a crash is finished by running it again.
func rewrap(path string, oldKey, newKey []byte, context string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	defer f.Close()
	hdr := make([]byte, hdrLen)
	if _, err := f.ReadAt(hdr, 0); err != nil || string(hdr[:4]) != magic {
		return ErrTampered
	}
	open := func(key []byte) ([]byte, bool) {
		wb, err := aes.NewCipher(key)
		if err != nil {
			return nil, false
		}
		gcm, _ := cipher.NewGCM(wb)
		content, err := gcm.Open(nil, hdr[32:44], hdr[44:76], []byte(context))
		return content, err == nil
	}
	if _, ok := open(newKey); ok {
		return nil
	}
	content, ok := open(oldKey)
	if !ok {
		return fmt.Errorf("%w: neither licence's key opens %s", ErrTampered, path)
	}
	k, err := newKeys(content, 0, blockSize)
	if err != nil {
		return err
	}
	if !hmac.Equal(k.headerMAC(hdr[:76], context), hdr[76:]) {
		return ErrTampered
	}
	wb, err := aes.NewCipher(newKey)
	if err != nil {
		return err
	}
	gcm, _ := cipher.NewGCM(wb)
	rand.Read(hdr[32:44])
	gcm.Seal(hdr[44:44], hdr[32:44], content, []byte(context))
	copy(hdr[76:], k.headerMAC(hdr[:76], context))
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	return nil
}
