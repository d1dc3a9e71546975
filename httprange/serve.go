package httprange

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Serve answers a GET or HEAD (the caller checks the method) of a
// representation of size bytes read from ra, with net/http, as Decide
// says: the thin net/http wrapper around the pure decision, for the origin
// and the stand-in servers of tests and the load tool, so that they answer
// exactly as the edge and shield do. It sets Accept-Ranges, ETag and
// Last-Modified from v, Content-Type (contentType) and Content-Length, and
// streams the body (multipart parts one after another, as net/http's
// fs.go does, never assembled in memory).
//
// A read error after the status line went out is returned: the caller
// then aborts the response (panic(http.ErrAbortHandler)) so that a short
// body never passes for a complete one. Before that, Serve has written
// nothing and returns the error too, so the caller may answer 5xx.
func Serve(w http.ResponseWriter, r *http.Request, ra io.ReaderAt, size int64, v Validators, contentType string, maxRanges int) (committed bool, err error) {
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	if len(v.ETag) > 0 {
		h.Set("ETag", string(v.ETag))
	}
	if !v.LastModified.IsZero() {
		h.Set("Last-Modified", v.LastModified.UTC().Format(http.TimeFormat))
	}
	var rbuf [4]Range
	d := Decide(rbuf[:0], Request{
		Preconditions: Preconditions{
			IfMatch:           header(r.Header, "If-Match"),
			IfNoneMatch:       header(r.Header, "If-None-Match"),
			IfModifiedSince:   header(r.Header, "If-Modified-Since"),
			IfUnmodifiedSince: header(r.Header, "If-Unmodified-Since"),
		},
		Range:   header(r.Header, "Range"),
		IfRange: header(r.Header, "If-Range"),
	}, size, v, maxRanges)
	head := r.Method == http.MethodHead
	switch d.Status {
	case http.StatusNotModified, http.StatusPreconditionFailed:
		w.WriteHeader(d.Status)
		return true, nil
	case http.StatusRequestedRangeNotSatisfiable:
		h.Set("Content-Range", string(AppendUnsatisfied(nil, size)))
		h.Set("Content-Length", "0")
		w.WriteHeader(d.Status)
		return true, nil
	case http.StatusOK:
		h.Set("Content-Type", contentType)
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		return copyRange(w, ra, Range{Start: 0, End: size - 1}, d.Status, head)
	}
	if len(d.Ranges) == 1 {
		h.Set("Content-Type", contentType)
		h.Set("Content-Range", string(AppendContentRange(nil, d.Ranges[0], size)))
		h.Set("Content-Length", strconv.FormatInt(d.Ranges[0].Len(), 10))
		return copyRange(w, ra, d.Ranges[0], d.Status, head)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, fmt.Errorf("httprange: boundary: %w", err)
	}
	boundary := hex.EncodeToString(b[:])
	parts := make([][]byte, len(d.Ranges))
	total := int64(0)
	for i, rg := range d.Ranges {
		parts[i] = AppendPartHeader(nil, boundary, contentType, rg, size)
		total += int64(len(parts[i])) + rg.Len()
	}
	end := AppendPartsEnd(nil, boundary)
	total += int64(len(end))
	h.Set("Content-Type", MultipartType(boundary))
	h.Set("Content-Length", strconv.FormatInt(total, 10))
	w.WriteHeader(d.Status)
	if head {
		return true, nil
	}
	for i, rg := range d.Ranges {
		if _, err := w.Write(parts[i]); err != nil {
			return true, err
		}
		if _, err := io.CopyN(w, io.NewSectionReader(ra, rg.Start, rg.Len()), rg.Len()); err != nil {
			return true, err
		}
	}
	_, err = w.Write(end)
	return true, err
}

// copyRange writes status and bytes r of ra. The first read happens before
// the status line, so a representation that cannot be read at all is an
// error the caller may still answer with a 5xx.
func copyRange(w http.ResponseWriter, ra io.ReaderAt, r Range, status int, head bool) (bool, error) {
	if head || r.Len() <= 0 {
		w.WriteHeader(status)
		return true, nil
	}
	var first [512]byte
	n, err := ra.ReadAt(first[:min(int64(len(first)), r.Len())], r.Start)
	if err != nil && !(err == io.EOF && int64(n) == min(int64(len(first)), r.Len())) {
		return false, err
	}
	w.WriteHeader(status)
	if _, err := w.Write(first[:n]); err != nil {
		return true, err
	}
	if rest := r.Len() - int64(n); rest > 0 {
		if _, err := io.CopyN(w, io.NewSectionReader(ra, r.Start+int64(n), rest), rest); err != nil {
			return true, err
		}
	}
	return true, nil
}

// header is the first value of a request header, nil when absent.
func header(h http.Header, key string) []byte {
	v, ok := h[key]
	if !ok || len(v) == 0 {
		return nil
	}
	return []byte(v[0])
}
