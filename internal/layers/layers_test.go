package layers

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/musiccdn/cdn/"

// leaves are the vocabulary and mechanism packages every layer may use.
// They import only other leaves (and the standard library and outside
// modules).
var leaves = []string{
	"config", "country", "daemon", "httprange", "identity", "ogg",
	"playticket", "ratelimit", "seektable", "tierauth", "urlsign", "vorbis", "hmacring", "metric",
	"cluster/rendezvous", "origin/api", "origin/media", "catalog", "addrfile", "manifest", "atomicfile", "ident",
	"internal/wait", "zipf",
}

// parentOK are the sub-packages allowed to import their parent beside
// test-support packages (httprange/httprangetest uses httprange as
// net/http/httptest uses net/http): none.
var parentOK = map[string]bool{}

// rule says which module packages the packages under a tree may import,
// beside leaves and their own tree.
type rule struct {
	tree  string
	may   []string
	never string // why, for the failure message
}

// rules, from the bottom up. A package is judged by the first rule whose
// tree holds it.
var rules = []rule{
	{tree: "cache"},
	{tree: "cluster"},
	{tree: "httpcache"},
	{tree: "tier", may: []string{"cache", "cluster", "httpcache"}},
	{tree: "origin"},
	// playertest is a stand-in edge in front of the real origin
	// (origin/origintest) for player tests: it builds real catalogs with
	// ingest and issues real licences.
	{tree: "player/playertest", may: []string{"player", "origin/ingest", "origin/licence", "origin/origintest"}},
	{tree: "player"},
	{tree: "loadtest", may: []string{"cache", "cluster", "tier", "origin"}},
	{tree: "pop", may: []string{"cache", "cluster", "tier", "origin"}},
	{tree: "cmd", may: []string{""}}, // anything
	// Test-only packages: anything but cmd.
	{tree: "securitytest", may: []string{"cache", "cluster", "tier", "origin", "player", "pop"}},
}

// testSupport reports whether pkg is a test-support package, named as
// Go names them: <dir>/<dir>test (httprange/httprangetest, like
// net/http/httptest).
func testSupport(pkg string) bool {
	i := strings.LastIndexByte(pkg, '/')
	if i < 0 {
		return false
	}
	parent, elem := pkg[:i], pkg[i+1:]
	return elem == parent[strings.LastIndexByte(parent, '/')+1:]+"test"
}

func under(pkg, tree string) bool {
	return tree == "" || pkg == tree || strings.HasPrefix(pkg, tree+"/")
}

func isLeaf(pkg string) bool {
	for _, l := range leaves {
		if pkg == l || strings.HasPrefix(pkg, l+"/") && !testSupport(pkg) {
			return true
		}
	}
	return false
}

// check returns why pkg may not import imp, or "" when it may.
func check(pkg, imp string) string {
	switch {
	case under(imp, "cmd") && !under(pkg, "cmd"):
		return "only commands import cmd/..."
	case strings.HasPrefix(pkg, imp+"/") && !testSupport(pkg) && !parentOK[pkg]:
		return "a package never imports its parent (small packages do not import what puts them together)"
	case testSupport(imp) && !testSupport(pkg):
		return "test-support packages (<dir>/<dir>test) are for tests"
	}
	if isLeaf(pkg) {
		if isLeaf(imp) {
			return ""
		}
		return "a leaf imports only leaves"
	}
	if isLeaf(imp) {
		return ""
	}
	for _, r := range rules {
		if !under(pkg, r.tree) {
			continue
		}
		if under(imp, r.tree) {
			return ""
		}
		for _, m := range r.may {
			if under(imp, m) {
				return ""
			}
		}
		return "the " + r.tree + " layer may import only leaves, itself and " + strings.Join(r.may, ", ")
	}
	return "no layer rule for " + pkg + ": add it to rules (and to the README's layout)"
}

// TestLayers lists every package's imports (go list, non-test files: what
// the binaries are made of) and checks each against the layers.
//
// Mutations caught: making player import origin/licence again ("the player
// layer may import only leaves..."), loadtest/cachesim importing loadtest
// ("never imports its parent"), origin/ingest importing a player package,
// a library importing cmd/internal/tiermain, httprange importing tier.
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg, ok := strings.CutPrefix(f[0], module)
		if !ok {
			continue
		}
		pkgs++
		for _, imp := range f[1:] {
			imp, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if why := check(pkg, imp); why != "" {
				t.Errorf("%s imports %s: %s", pkg, imp, why)
			}
		}
	}
	if pkgs < 30 {
		t.Fatalf("go list gave %d packages of the module", pkgs)
	}
	touchSources(t)
}

// touchSources opens every .go file of the module, so that go test's
// cache, which notes the files a test opens but not what a command it
// runs reads, runs this test again when any source changes.
func touchSources(t *testing.T) {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	err = filepath.WalkDir(strings.TrimSpace(string(root)), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			f.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCheck pins the rules themselves on known edges.
func TestCheck(t *testing.T) {
	bad := [][2]string{
		{"player", "origin/licence"},
		{"player/offline", "origin/licence"},
		{"loadtest/cachesim", "loadtest"},
		{"origin/ingest", "player/ogg"},
		{"origin/ingest", "player"},
		{"tier", "cmd/internal/tiermain"},
		{"httprange", "tier"},
		{"origin", "tier"},
		{"cache", "tier"},
		{"tier", "httprange/httprangetest"},
		{"origin/api", "origin/licence"},
		{"loadtest/plan", "loadtest"},
	}
	for _, e := range bad {
		if check(e[0], e[1]) == "" {
			t.Errorf("check(%q, %q) allows it", e[0], e[1])
		}
	}
	good := [][2]string{
		{"player", "origin/api"},
		{"player", "vorbis"},
		{"origin/ingest", "vorbis"},
		{"vorbis", "ogg"},
		{"tier", "cache"},
		{"cmd/edge", "cmd/internal/tiermain"},
		{"player/playertest", "origin/ingest"},
		{"httprange/httprangetest", "httprange"},
		{"origin/origintest", "origin"},
		{"origin/origintest", "internal/wait"},
		{"player/playertest", "origin/origintest"},
	}
	for _, e := range good {
		if why := check(e[0], e[1]); why != "" {
			t.Errorf("check(%q, %q) = %q, want allowed", e[0], e[1], why)
		}
	}
}
