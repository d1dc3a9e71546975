// Command tiercred prints a tier credential (the X-Tier-Auth header value,
// package tierauth) for one request, so an operator can call a node's
// internal admin endpoints with curl:
//
//	curl -XPOST -H "X-Tier-Auth: $(tiercred -key tier1:$HEX -target /admin/reload)" $EDGE_INT/admin/reload
//
// The credential is valid for that method and request target only, for
// tierauth.MaxSkew either side of now.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/musiccdn/cdn/tierauth"
)

func main() {
	key := flag.String("key", "", "the POP's first tier key as id:hexsecret (tier_keys[0])")
	method := flag.String("method", "POST", "HTTP method of the request")
	target := flag.String("target", "", "request target: path and query exactly as sent, e.g. /admin/purge?tracks=t5")
	flag.Parse()
	id, secret, ok := strings.Cut(*key, ":")
	if !ok || *target == "" {
		fmt.Fprintln(os.Stderr, "usage: tiercred -key id:hexsecret [-method POST] -target /admin/reload")
		os.Exit(2)
	}
	kr, err := tierauth.New([]tierauth.KeyConfig{{ID: id, Secret: secret}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "tiercred:", err)
		os.Exit(2)
	}
	fmt.Println(kr.Sign(*method, *target, time.Now()))
}
