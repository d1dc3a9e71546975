package recs

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/musiccdn/cdn/country"
)

func newLoopbackServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, acceptEncoding string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	// A bare transport, so Go's client does not add or undo gzip itself.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func TestHandler(t *testing.T) {
	f := sharedFixture(t)
	rights := fakeRights{{"t2", "SE"}: true}
	s := newService(t, f, rights)
	srv := newLoopbackServer(t, s.Handler())

	if code, _, _ := get(t, srv.URL+"/v1/recs/next/t1?country=SE", ""); code != http.StatusServiceUnavailable {
		t.Errorf("before training: status %d, want 503", code)
	}
	if err := s.Train(context.Background()); err != nil {
		t.Fatal(err)
	}

	statuses := []struct {
		path string
		want int
	}{
		{"/v1/recs/next/t1?n=3&country=SE", 200},
		{"/v1/recs/next/t1?country=SE", 200},
		{"/v1/recs/next/unknown?n=3&country=SE", 404},
		{"/v1/recs/next/t1?n=3", 200},
		{"/v1/recs/next/t1?n=0&country=SE", 400},
		{"/v1/recs/next/t1?n=101&country=SE", 400},
		{"/v1/recs/next/t1?n=x&country=SE", 400},
		{"/v1/recs/next/t1?n=3&country=se", 400},
		{"/v1/recs/next/bad.id?country=SE", 400},
		{"/v1/recs/next/t1/extra?country=SE", 404},
		{"/v1/recs/user/u1?n=10", 200},
		{"/v1/recs/user/u1?n=10&country=SE", 200},
		{"/v1/recs/user/nobody", 404},
		{"/v1/recs/other/t1", 404},
	}
	for _, tt := range statuses {
		if code, _, _ := get(t, srv.URL+tt.path, ""); code != tt.want {
			t.Errorf("GET %s: status %d, want %d", tt.path, code, tt.want)
		}
	}

	// The same answer in every coding, from the cache the second time.
	var plain []byte
	for _, enc := range []string{"", "gzip", "zstd", "gzip, zstd;q=0.5", "br", "gzip;q=0, zstd"} {
		for round := 0; round < 2; round++ {
			code, h, body := get(t, srv.URL+"/v1/recs/next/t1?n=5&country=SE", enc)
			if code != 200 {
				t.Fatalf("Accept-Encoding %q: status %d", enc, code)
			}
			if h.Get("Vary") != "Accept-Encoding" || h.Get("Content-Type") != "application/json" {
				t.Errorf("Accept-Encoding %q: headers %v", enc, h)
			}
			want := negotiate(enc)
			if got := h.Get("Content-Encoding"); got != want {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", enc, got, want)
			}
			switch want {
			case "gzip":
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			case "zstd":
				zr, err := zstd.NewReader(nil)
				if err != nil {
					t.Fatal(err)
				}
				body, err = zr.DecodeAll(body, nil)
				zr.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			if plain == nil {
				plain = body
			}
			if !bytes.Equal(body, plain) {
				t.Errorf("Accept-Encoding %q: body %s, want %s", enc, body, plain)
			}
		}
	}
	var got struct {
		Tracks []string `json:"tracks"`
	}
	if err := json.Unmarshal(plain, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Tracks) != 5 || slices.Contains(got.Tracks, "t1") || slices.Contains(got.Tracks, "t2") {
		t.Errorf("next(t1, SE) = %q: want 5 tracks without t1 and the denied t2", got.Tracks)
	}
	// Same track elsewhere: t2 allowed again, still never t1.
	_, _, body := get(t, srv.URL+"/v1/recs/next/t1?n=50&country=DE", "")
	if strings.Contains(string(body), `"t1"`) {
		t.Errorf("next(t1, DE) = %s contains t1", body)
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		header, want string
	}{
		{"", ""},
		{"gzip", "gzip"},
		{"zstd", "zstd"},
		{"gzip, zstd", "zstd"},
		{"gzip;q=1, zstd;q=0.5", "gzip"},
		{"zstd;q=0, gzip;q=0", ""},
		{"br", ""},
		{"*", "zstd"},
		{"*;q=0.5, identity", ""},
		{"identity;q=0, gzip;q=0.1", "gzip"},
		{"GZIP", "gzip"},
		{"x-gzip", "gzip"},
		{"gzip;q=bogus", ""},
		{" zstd ; q=0.9 , gzip ; q=0.8", "zstd"},
	}
	for _, tt := range tests {
		if got := negotiate(tt.header); got != tt.want {
			t.Errorf("negotiate(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		e       endpoint
		id, q   string
		want    request
		wantErr bool
	}{
		{endpointNext, "t1", "n=3&country=SE", request{endpointNext, "t1", "SE", 3}, false},
		{endpointNext, "t1", "country=SE", request{endpointNext, "t1", "SE", 3}, false},
		{endpointNext, "t1", "n=3", request{endpointNext, "t1", "", 3}, false},
		{endpointNext, "t 1", "country=SE", request{}, true},
		{endpointNext, "", "country=SE", request{}, true},
		{endpointNext, "t1", "country=SWE", request{}, true},
		{endpointNext, "t1", "country=SE&n=-1", request{}, true},
		{endpointUser, "u1", "", request{endpointUser, "u1", "", 10}, false},
		{endpointUser, "user-example_1", "n=7&x=y", request{endpointUser, "user-example_1", "", 7}, false},
		{endpointUser, "user@example", "", request{}, true}, // not a user id (catalog.ValidUserID)
		{endpointUser, "a/b", "", request{}, true},
	}
	for _, tt := range tests {
		got, err := parseRequest(tt.e, tt.id, tt.q, 100)
		if (err != nil) != tt.wantErr || err == nil && got != tt.want {
			t.Errorf("parseRequest(%v, %q, %q) = %+v, %v, want %+v (error %v)", tt.e, tt.id, tt.q, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add("t1", "n=3&country=SE", false)
	f.Add("u1", "n=10", true)
	f.Add("x", "n=99999999999999999999&country=%", false)
	f.Fuzz(func(t *testing.T, id, query string, user bool) {
		e := endpointNext
		if user {
			e = endpointUser
		}
		req, err := parseRequest(e, id, query, 100)
		if err != nil {
			return
		}
		if req.n < 1 || req.n > 100 || req.id != id {
			t.Errorf("parseRequest(%q, %q) = %+v: accepted out of range", id, query, req)
		}
		if req.country != "" && !country.Valid(req.country) {
			t.Errorf("parseRequest(%q, %q) = %+v: accepted a bad country", id, query, req)
		}
	})
}

func FuzzNegotiate(f *testing.F) {
	f.Add("gzip, zstd;q=0.5")
	f.Add("*;q=0")
	f.Fuzz(func(t *testing.T, h string) {
		switch got := negotiate(h); got {
		case "", "gzip", "zstd":
		default:
			t.Errorf("negotiate(%q) = %q", h, got)
		}
	})
}

// TestRunRetrains drives Run on a fake clock: one training at once, one
// more each RetrainEvery.
func TestRunRetrains(t *testing.T) {
	f := newFixture(t, 100, 60, 3)
	s := newService(t, f, nil)
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			s.Run(ctx)
			close(done)
		}()
		synctest.Wait()
		if g := s.Generation(); g != 1 {
			t.Fatalf("after start: generation %d, want 1", g)
		}
		time.Sleep(s.cfg.RetrainEvery - time.Second)
		synctest.Wait()
		if g := s.Generation(); g != 1 {
			t.Fatalf("before the period: generation %d, want 1", g)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if g := s.Generation(); g != 2 {
			t.Fatalf("after one period: generation %d, want 2", g)
		}
		cancel()
		<-done
	})
}
