// Package layers holds the test that keeps the module's import graph in
// its layers (the README's "Layout" gives them as a list): it fails when a
// package imports one it must not. It has no code of its own.
package layers
