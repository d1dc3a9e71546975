// Package e2e holds the load tool's end-to-end test against a real POP
// (package pop in this process). It is apart from package loadtest so
// that the tool's own tests do not depend on the POP building.
package e2e
