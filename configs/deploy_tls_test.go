package configs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin"
	"github.com/musiccdn/cdn/tier"
)

// pki is a CA and a server certificate it signed for 127.0.0.1, as PEM
// files.
type pki struct{ ca, cert, key string }

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "POP CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	p := pki{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	os.WriteFile(p.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	os.WriteFile(p.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(p.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return p
}

// loopback rewrites a deploy file for one host: every "<ip>:<port>" of
// the POP becomes a free 127.0.0.1 port (the same one in every file), the
// placeholder secrets real ones, the TLS files pk's.
type loopback struct {
	ports map[string]string
	pk    pki
	dir   string
}

var hostPort = regexp.MustCompile(`(192\.0\.2\.\d+|0\.0\.0\.0):(\d+)`)

func (l *loopback) port(t *testing.T, key string) string {
	if p, ok := l.ports[key]; ok {
		return p
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := ln.Addr().String()
	l.ports[key] = p
	return p
}

func (l *loopback) rewrite(t *testing.T, file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := fillSecrets(string(b))
	bindAddr := regexp.MustCompile(`bind_addr: (192\.0\.2\.\d+)`).FindStringSubmatch(s)
	s = hostPort.ReplaceAllStringFunc(s, func(m string) string {
		key := m
		if strings.HasPrefix(m, "0.0.0.0") {
			key = file + " " + m // each host's own public port
		}
		return l.port(t, key)
	})
	if bindAddr != nil {
		gossip := l.port(t, bindAddr[1]+":7946")
		_, port, _ := net.SplitHostPort(gossip)
		s = strings.Replace(s, "bind_addr: "+bindAddr[1], "bind_addr: 127.0.0.1", 1)
		s = strings.Replace(s, "bind_port: 7946", "bind_port: "+port, 1)
	}
	s = strings.ReplaceAll(s, "/etc/musiccdn/tls/pop-ca.pem", l.pk.ca)
	for _, f := range []string{"edge", "shield"} {
		s = strings.ReplaceAll(s, "/etc/musiccdn/tls/"+f+".pem", l.pk.cert)
		s = strings.ReplaceAll(s, "/etc/musiccdn/tls/"+f+".key", l.pk.key)
	}
	s = strings.ReplaceAll(s, "/var/cache/musiccdn/chunks", filepath.Join(l.dir, filepath.Base(file)))
	return s
}

// fillSecrets puts values in the deploy files' placeholders.
func fillSecrets(s string) string {
	s = strings.ReplaceAll(s, "REPLACE-WITH-32-HEX-DIGITS-OR-MORE-000000000000", "00112233445566778899aabbccddeeff")
	s = strings.ReplaceAll(s, "REPLACE-WITH-32-HEX-DIGITS-OR-MORE-111111111111", "ffeeddccbbaa99887766554433221100")
	s = strings.ReplaceAll(s, "REPLACE-WITH-BASE64-KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	s = strings.ReplaceAll(s, "REPLACE-WITH-BASE64-ED25519-SEED", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	s = strings.ReplaceAll(s, "REPLACE-WITH-64-HEX-DIGITS-TIER-KEY-2", strings.Repeat("2f", 32))
	return strings.ReplaceAll(s, "REPLACE-WITH-64-HEX-DIGITS-TIER-KEY-1", strings.Repeat("1f", 32))
}

// TestDeployTLSOnLoopback brings the deploy example up on loopback as
// written (its addresses mapped to local ports, its secrets and
// certificates filled in): shields serve fills over TLS verified by the
// edges' fill_ca, edges fill from their peers (peer fill bytes > 0), and
// an edge given another CA does not start. Catches: fill_ca not used by
// the fill clients (every fill fails), peer fills pointed at the TLS
// port (peer bytes 0, issue 16 item 3), a wrong CA accepted at start-up.
func TestDeployTLSOnLoopback(t *testing.T) {
	dir := t.TempDir()
	l := &loopback{ports: map[string]string{}, pk: newPKI(t, dir), dir: dir}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The origin: its listeners where the deploy files expect them, a
	// synthetic catalog instead of the deploy's directory and Kafka.
	idp, err := identity.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	var edgeCfgs, shieldCfgs []tier.Config
	for _, f := range []string{"deploy/shield-a.yaml", "deploy/shield-b.yaml", "deploy/edge-a.yaml", "deploy/edge-b.yaml", "deploy/edge-c.yaml"} {
		c := tier.DefaultEdgeConfig()
		if strings.Contains(f, "shield") {
			c = tier.DefaultShieldConfig()
		}
		if err := config.Parse([]byte(l.rewrite(t, f)), f, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		c.DrainDelay = 0
		c.Cache.MemoryBytes = 32 << 20
		c.Cache.DiskBytes = 64 << 20
		if c.Role == tier.Edge {
			c.HotCache.MemoryBytes = 8 << 20
			c.Manifest.Identity.PublicKeys = []string{idp.PublicKey()} // the test's provider
			edgeCfgs = append(edgeCfgs, c)
		} else {
			shieldCfgs = append(shieldCfgs, c)
		}
	}
	ocfg := origin.DefaultConfig()
	ocfg.Catalog, ocfg.Seed = "synthetic:200", 5
	ocfg.Keys = []origin.KeyConfig{{ID: edgeCfgs[0].Keys[0].ID, Secret: edgeCfgs[0].Keys[0].Secret}}
	ocfg.TierKeys = edgeCfgs[0].TierKeys
	ocfg.Identity.PublicKeys = []string{idp.PublicKey()}
	ocfg.DataDir = filepath.Join(dir, "origin")
	o, err := origin.New(ocfg, logger, nil)
	tok, _ := idp.Issue(identity.User{ID: "u1", Country: "SE"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for addr, h := range map[string]http.Handler{l.port(t, "192.0.2.30:9000"): o.InternalHandler(), l.port(t, "192.0.2.30:8080"): o.PublicHandler()} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
		srv.Start()
		t.Cleanup(srv.Close)
	}

	start := func(c tier.Config) *tier.Node {
		n, err := tier.NewNode(c, logger, prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		done := make(chan error, 1)
		go func() { done <- n.Serve() }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n.Shutdown(ctx)
			<-done
		})
		return n
	}
	var nodes []*tier.Node
	for _, c := range append(append([]tier.Config{}, shieldCfgs...), edgeCfgs...) {
		nodes = append(nodes, start(c))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.Join(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := n.CheckFills(ctx); err != nil {
			t.Fatalf("CheckFills with the POP's CA: %v", err)
		}
	}
	edges := nodes[len(shieldCfgs):]
	for _, e := range edges {
		err := e.Members.WaitFor(ctx, func() bool {
			return len(e.Members.Members(cluster.RoleEdge)) == 3 && len(e.Members.Members(cluster.RoleShield)) == 2
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(l.pk.ca)
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	// Manifests minted by edge a (its snapshot pulled from the origin
	// with the tier credential); every track through edge a, so the
	// tracks edges b and c own are filled from them.
	for _, e := range edges {
		if err := e.WaitManifests(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 12 {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/manifest/t%d", edges[0].URL(), i), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Client-Country", "SE")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m origin.Manifest
		err = jsonDecode(resp.Body, &m)
		resp.Body.Close()
		if resp.StatusCode == 403 {
			continue
		}
		if err != nil || len(m.Tiers) == 0 {
			t.Fatalf("manifest t%d: %d %v", i, resp.StatusCode, err)
		}
		req, _ = http.NewRequest("GET", edges[0].URL()+m.Tiers[0].URL, nil)
		req.Header.Set("Range", "bytes=0-999")
		req.Header.Set("X-Client-Country", "SE")
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 206 {
			t.Fatalf("t%d at edge a over TLS: status %d", i, resp.StatusCode)
		}
	}
	if got := scrape(t, edges[0].InternalURL(), "edge_peer_fill_bytes_total"); got <= 0 {
		t.Errorf("edge a peer fill bytes %v, want > 0: the POP is not one cache", got)
	}

	// Another CA: start-up stops, naming the field.
	other := newPKI(t, t.TempDir())
	bad := edgeCfgs[0]
	bad.FillCA = other.ca
	bad.Listen, bad.InternalAddr = "127.0.0.1:0", "127.0.0.1:0"
	bad.Cluster.BindPort, bad.Cluster.HTTPAddr, bad.Cluster.NodeName = 0, "", "edge-wrong-ca"
	n, err := tier.NewNode(bad, logger, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Kill()
	if err := n.CheckFills(ctx); err == nil || !strings.Contains(err.Error(), "fill_ca") {
		t.Errorf("an edge with another CA: CheckFills = %v, want an error naming fill_ca", err)
	}
}

func scrape(t *testing.T, base, name string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
