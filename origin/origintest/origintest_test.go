package origintest_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/internal/wait"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/origintest"
)

// get asks o for path as a shield would (signed when sign), with a Range
// when rng is set, and reads the whole answer (err is the body's).
func get(t *testing.T, o *origintest.Origin, path, rng string, sign bool) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, o.URL+path, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	if sign {
		o.Sign(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// TestOrigin drives each fault through real HTTP. Mutations caught: the
// tier credential not required (the unsigned request is not 403),
// FailNext failing one request too many or too few, or not marking
// HeaderUpstreamError; Hold not holding (Held never reaches 1, or the
// request ends before the release); Truncate sending the whole body;
// Republish not changing the ETag; Count or Ranges not counting.
func TestOrigin(t *testing.T) {
	o := origintest.Start(t, origintest.Config{})
	cat := o.Synthetic()
	const path = "/media/t1/96.ogg"
	want := make([]byte, 100)
	cat.Fill(want, 1, 96, cat.Generation(1), 0)

	if resp, _, _ := get(t, o, path, "", false); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unsigned: status %d, want 403", resp.StatusCode)
	}
	resp, body, err := get(t, o, path, "bytes=0-99", true)
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want) {
		t.Fatalf("signed range: status %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
	etag := resp.Header.Get("ETag")

	o.FailNext(2, http.StatusServiceUnavailable, true)
	for i := range 2 {
		resp, _, _ := get(t, o, path, "bytes=0-99", true)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(origintest.HeaderUpstreamError) != "1" {
			t.Fatalf("failure %d: status %d, %s %q", i, resp.StatusCode, origintest.HeaderUpstreamError, resp.Header.Get(origintest.HeaderUpstreamError))
		}
	}
	if resp, _, _ := get(t, o, path, "bytes=0-99", true); resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("after 2 failures: status %d", resp.StatusCode)
	}

	release := o.Hold()
	done := make(chan int, 1)
	go func() {
		resp, _, _ := get(t, o, path, "bytes=0-99", true)
		done <- resp.StatusCode
	}()
	wait.For(t, 10*time.Second, "the request to be held", func() bool { return o.Held() == 1 })
	select {
	case code := <-done:
		t.Fatalf("held request answered %d before the release", code)
	default:
	}
	release()
	release() // twice is fine
	if code := <-done; code != http.StatusPartialContent {
		t.Fatalf("released request: status %d", code)
	}

	o.Truncate(1000)
	resp, body, err = get(t, o, path, "", true)
	if err == nil || int64(len(body)) >= resp.ContentLength || len(body) > 1000 {
		t.Fatalf("truncated: %d of %d bytes, err %v: want at most 1000 and an error", len(body), resp.ContentLength, err)
	}
	o.Heal()
	if resp, body, err := get(t, o, path, "", true); err != nil || int64(len(body)) != cat.Size(1, 96) {
		t.Fatalf("healed: status %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}

	o.Republish("t1")
	resp, body, _ = get(t, o, path, "bytes=0-99", true)
	if resp.Header.Get("ETag") == etag || bytes.Equal(body, want) {
		t.Fatalf("republished: ETag %s (was %s), bytes unchanged %v", resp.Header.Get("ETag"), etag, bytes.Equal(body, want))
	}

	if n := o.Count(path); n != 9 {
		t.Errorf("Count = %d, want 9", n)
	}
	if n := o.Ranges(path)["GET bytes=0-99"]; n != 6 {
		t.Errorf("Ranges[GET bytes=0-99] = %d, want 6 (of %v)", n, o.Ranges(path))
	}
	if n := o.MediaRequests(); n != 9 {
		t.Errorf("MediaRequests = %d, want 9", n)
	}
}

// TestRights: /v1/rights/ is the origin's, counted, behind the tier
// credential.
func TestRights(t *testing.T) {
	o := origintest.Start(t, origintest.Config{})
	for _, tc := range []struct {
		path string
		sign bool
		code int
	}{
		{"/v1/rights/t3?country=SE", true, http.StatusNoContent},
		{"/v1/rights/nope?country=SE", true, http.StatusNotFound},
		{"/v1/rights/t3?country=SE", false, http.StatusForbidden},
	} {
		if resp, _, _ := get(t, o, tc.path, "", tc.sign); resp.StatusCode != tc.code {
			t.Errorf("%s (signed %v): status %d, want %d", tc.path, tc.sign, resp.StatusCode, tc.code)
		}
	}
	if n := o.RightsRequests(); n != 3 {
		t.Errorf("RightsRequests = %d, want 3", n)
	}
}

// TestReplace: a directory catalog's file replaced between two requests
// is served as a new version. Catches: Replace writing elsewhere than the
// catalog reads (old bytes and ETag), or in place (not a new version).
func TestReplace(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "song"), 0o755); err != nil {
		t.Fatal(err)
	}
	v1, v2 := bytes.Repeat([]byte("one "), 1000), bytes.Repeat([]byte("two!"), 1500)
	if err := os.WriteFile(filepath.Join(dir, "song", "96.ogg"), v1, 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := media.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	o := origintest.Start(t, origintest.Config{Source: cat})
	resp, body, err := get(t, o, "/media/song/96.ogg", "", true)
	if err != nil || !bytes.Equal(body, v1) {
		t.Fatalf("first version: status %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
	etag := resp.Header.Get("ETag")
	o.Replace("song", 96, catalog.Audio, v2)
	resp, body, err = get(t, o, "/media/song/96.ogg", "", true)
	if err != nil || !bytes.Equal(body, v2) || resp.Header.Get("ETag") == etag {
		t.Fatalf("replaced: status %d, %d bytes, ETag %s (was %s), %v", resp.StatusCode, len(body), resp.Header.Get("ETag"), etag, err)
	}
}
