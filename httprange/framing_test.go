package httprange_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/musiccdn/cdn/httprange"
	"github.com/musiccdn/cdn/httprange/httprangetest"
)

// TestPartFraming writes a multipart/byteranges body with AppendPartHeader
// and AppendPartsEnd and reads it back with the conformance table's
// checker (mime/multipart underneath). Catches: a part header without its
// Content-Range or blank line, a closing delimiter missing or misspelt, a
// MultipartType other than multipart/byteranges with that boundary.
func TestPartFraming(t *testing.T) {
	data := []byte(strings.Repeat("0123456789", 10))
	ranges := []httprange.Range{{Start: 0, End: 9}, {Start: 50, End: 59}, {Start: 99, End: 99}}
	const boundary = "b0und4ry"
	var body []byte
	for _, r := range ranges {
		body = httprange.AppendPartHeader(body, boundary, "audio/ogg", r, int64(len(data)))
		body = append(body, data[r.Start:r.End+1]...)
	}
	body = httprange.AppendPartsEnd(body, boundary)
	resp := &http.Response{Header: http.Header{}, ContentLength: int64(len(body))}
	resp.Header.Set("Content-Type", httprange.MultipartType(boundary))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	httprangetest.CheckMultipart(t, resp, body, int64(len(data)), ranges, func(start, end int64) []byte { return data[start : end+1] })
}
