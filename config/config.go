// Package config loads a binary's YAML configuration file into its Config
// struct, strictly, and reports every problem with the file and line at
// fault, compiler style:
//
//	configs/edge.yaml:55: cache.chunk_size: 3KB is not a power of two from 4KiB to 4MiB
//
// A component's Config is a plain struct with yaml tags, filled with its
// defaults by a DefaultXConfig() function; keys absent from the file keep
// those defaults. Decoding is strict: an unknown key or a value of the wrong
// type is an error naming the key and its line, and decoding goes on so that
// one run reports all of them. Then, if the struct has a Validate() error
// method, it is called; a *FieldError it returns (alone, or several joined
// with errors.Join) names the field by its dotted YAML path, such as
// "cache.chunk_size" or "shields[1].addr", and Parse maps that path back to
// the line of its key in the file, or says "(default)" when the file does
// not set it.
//
// A config that nests component configs validates each and hands the errors
// up through Prefix, so each component's Validate names fields relative to
// itself:
//
//	func (c EdgeFileConfig) Validate() error {
//		return errors.Join(
//			config.Prefix("cache", c.Cache.Validate()),
//			config.Prefix("listen", c.Listen.Validate()),
//		)
//	}
//
// Flags override the file only when given on the command line: bind flags
// to the config struct's fields, parse them, then call LoadWithFlags, which
// loads the file over the struct and puts the given flags back on top before
// validating (see the package example). Duration ("250ms", "6h") and Size
// ("4096", "256KiB", "64KB") are field types for the two kinds of number
// that need units; both are flag.Values.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the YAML file at path into dst, which must be a non-nil
// pointer, usually to a Config already holding its defaults. See Parse.
func Load(path string, dst any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Parse(data, path, dst)
}

// Parse decodes the YAML document data into dst, which must be a non-nil
// pointer, then calls dst's Validate method if it has one. name is the file
// name used in errors.
//
// A problem found in the document or by Validate is returned as an *Error;
// several are returned joined with errors.Join, one per line of text.
// errors.As finds the *FieldError behind an *Error that came from Validate.
func Parse(data []byte, name string, dst any) error {
	return ParseWithFlags(data, name, dst, nil)
}

// LoadWithFlags is Load for a binary whose flags override its file: fs has
// been parsed, and some of its flags are bound to fields of *dst (with
// fs.StringVar(&cfg.Addr, ...), fs.Var(&cfg.Cache.ChunkSize, ...) and so
// on). It loads the file over dst, which would overwrite those fields, then
// sets again the flags that were given on the command line (fs.Visit), so
// that they win over the file, and validates the result. Flags not given
// leave the file's value, or the default, alone.
//
// An empty path loads no file: dst keeps its defaults, plus the flags.
//
// A flag whose String the file changed is set again from its String as
// fs.Parse left it, so a flag bound to a field must read back its own String
// (all of package flag's own kinds do, and so do Duration and Size). Flags
// whose String did not change, such as fs.Func ones, are not set again.
//
// An error from Validate names the file's line, which is wrong if a flag set
// that field; name such flags after their YAML path
// (fs.Var(&cfg.Cache.ChunkSize, "cache.chunk_size", ...)) and the error
// names the flag instead: "flag -cache.chunk_size: must be ...".
func LoadWithFlags(path string, dst any, fs *flag.FlagSet) error {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return ParseWithFlags(data, path, dst, fs)
}

// ParseWithFlags is Parse with LoadWithFlags's handling of fs, which may be
// nil.
func ParseWithFlags(data []byte, name string, dst any, fs *flag.FlagSet) error {
	if v := reflect.ValueOf(dst); v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("config: decoding %s: destination must be a non-nil pointer, got %T", name, dst)
	}
	// Snapshot the given flags now: once the file is decoded, the fields
	// they are bound to, and so their String, hold the file's values.
	var given []*flag.Flag
	values := map[string]string{}
	if fs != nil {
		fs.Visit(func(f *flag.Flag) {
			given = append(given, f)
			values[f.Name] = f.Value.String()
		})
	}

	d := &document{name: name}
	if err := d.decode(data, dst); err != nil {
		return err
	}
	for _, f := range given {
		if f.Value.String() == values[f.Name] {
			continue // not bound to dst, or the file agreed; fs.Func flags too
		}
		if err := fs.Set(f.Name, values[f.Name]); err != nil {
			return fmt.Errorf("config: setting flag -%s again after loading %s: %w", f.Name, name, err)
		}
	}
	v, ok := dst.(interface{ Validate() error })
	if !ok {
		return nil
	}
	return d.locate(v.Validate(), values)
}

// Error is one problem with a configuration, placed in its file.
type Error struct {
	File   string // the name given to Parse, or the path given to Load
	Line   int    // 1-based line of the key at fault; 0 if unknown or absent
	Column int    // 1-based column of that key; 0 if unknown or absent
	Field  string // dotted YAML path, like "cache.chunk_size"; "" if none
	Msg    string // what is wrong

	// Default is set when Field is not in the file, so its value is the
	// default; Flag, when it was set by the flag named so.
	Default bool
	Flag    string

	err error // the *FieldError from Validate, if any
}

// Error formats e as "file:line: field: msg", with "(default)" in place of
// the line for a field absent from the file, and "flag -name" in place of
// the file and line for a field set by a flag.
func (e *Error) Error() string {
	if e.Flag != "" {
		return "flag -" + e.Flag + ": " + e.Msg
	}
	var b strings.Builder
	b.WriteString(e.File)
	switch {
	case e.Line > 0 && e.File == "":
		b.WriteString("line " + strconv.Itoa(e.Line))
	case e.Line > 0:
		b.WriteString(":" + strconv.Itoa(e.Line))
	case e.Default && e.File != "":
		b.WriteString(":(default)")
	case e.Default:
		b.WriteString("(default)") // no file was loaded
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the *FieldError behind e, if any.
func (e *Error) Unwrap() error { return e.err }

// FieldError is what a Validate method returns about one field: Field is
// its dotted YAML path relative to the struct validated ("chunk_size",
// "cache.chunk_size", "shields[1]", "shields[1].addr"), Msg what is wrong.
// Join several with errors.Join to report them all.
type FieldError struct {
	Field string
	Msg   string
}

// Errorf returns a *FieldError for field with a message formatted as by
// fmt.Sprintf.
func Errorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Prefix returns err with prefix put in front of the Field of every
// *FieldError in it, for a Config that validates the component configs it
// holds: Prefix("cache", Errorf("chunk_size", ...)) names
// "cache.chunk_size", and Prefix("shields", Errorf("[1]", ...)) names
// "shields[1]". Joined errors (errors.Join) stay joined, each prefixed.
//
// Any other error becomes a *FieldError naming prefix itself, so it is still
// placed at that section of the file; a *FieldError wrapped with
// fmt.Errorf's %w keeps its field but loses the wrapper's text, so return
// FieldErrors as they are. Prefix(prefix, nil) is nil.
func Prefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	switch e := err.(type) {
	case *FieldError:
		return &FieldError{Field: joinPath(prefix, e.Field), Msg: e.Msg}
	case interface{ Unwrap() []error }:
		var out []error
		for _, inner := range e.Unwrap() {
			out = append(out, Prefix(prefix, inner))
		}
		return errors.Join(out...)
	}
	if errors.As(err, &fe) {
		return &FieldError{Field: joinPath(prefix, fe.Field), Msg: fe.Msg}
	}
	return &FieldError{Field: prefix, Msg: err.Error()}
}

// joinPath puts a path together: "cache"+"chunk_size" is
// "cache.chunk_size", "shields"+"[1]" is "shields[1]".
func joinPath(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case field[0] == '[':
		return prefix + field
	}
	return prefix + "." + field
}

// document is a parsed file: its name and where each path's key sits.
type document struct {
	name   string
	nodes  []place          // every key and list item, in document order
	paths  map[string]place // the same, by path
	byLine map[int][]int    // indexes in nodes of the places on a line
}

// place is a node of the document and its path.
type place struct {
	path string
	at   *yaml.Node // the key of a mapping entry, or a list item
	val  *yaml.Node // the value (the item itself for a list item)
}

// decode parses data into a node tree to know where every path sits, then
// decodes it strictly into dst, turning the decoder's errors, which only
// carry a line, into *Errors that name the field.
func (d *document) decode(data []byte, dst any) error {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err == io.EOF {
		return nil // an empty file leaves the defaults
	} else if err != nil {
		return d.syntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			return d.syntaxError(err)
		}
		return &Error{File: d.name, Line: extra.Line, Msg: "a configuration file holds one YAML document, found another"}
	}
	d.paths, d.byLine = map[string]place{}, map[int][]int{}
	d.walk("", nil, &root)

	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	err := strict.Decode(dst)
	var te *yaml.TypeError
	switch {
	case err == nil || err == io.EOF:
		return nil
	case errors.As(err, &te):
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, d.typeError(msg))
		}
		return join(errs)
	}
	return d.syntaxError(err)
}

// walk records the place of n at path, and of everything below it. It does
// not follow aliases, so a document aliasing itself cannot make it loop.
func (d *document) walk(path string, key, n *yaml.Node) {
	at := key
	if at == nil {
		at = n
	}
	p := place{path: path, at: at, val: n}
	d.nodes = append(d.nodes, p)
	d.byLine[at.Line] = append(d.byLine[at.Line], len(d.nodes)-1)
	if n.Line != at.Line {
		d.byLine[n.Line] = append(d.byLine[n.Line], len(d.nodes)-1)
	}
	if _, dup := d.paths[path]; !dup {
		d.paths[path] = p
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			d.walk(path, nil, c)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			d.walk(joinPath(path, k.Value), k, n.Content[i+1])
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.walk(path+"["+strconv.Itoa(i)+"]", nil, c)
		}
	}
}

// typeError turns one of the decoder's "line N: msg" errors into an *Error
// naming the field on that line. The decoder gives no column, so when a
// line holds several nodes ("cache: {slots: x}") the message tells which.
func (d *document) typeError(msg string) error {
	line, rest := splitLine(msg)
	e := &Error{File: d.name, Line: line, Msg: rest}
	p := d.findTypeError(line, rest)
	if p == nil {
		return e
	}
	e.Field, e.Line, e.Column = p.path, p.at.Line, p.at.Column
	if _, r, ok := splitColumn(rest); ok {
		e.Msg = r
	}
	if strings.HasPrefix(rest, "field ") && strings.Contains(rest, " not found in type ") {
		e.Msg = "unknown field"
	}
	return e
}

// findTypeError returns the place a decoder error on line is about, or nil.
func (d *document) findTypeError(line int, msg string) *place {
	first := func(match func(p *place) bool) *place {
		for _, i := range d.byLine[line] {
			if p := &d.nodes[i]; p.path != "" && match(p) {
				return p
			}
		}
		return nil
	}
	isKey := func(p *place) bool { return p.at != p.val && p.at.Line == line }

	// "field x not found in type config.T": the key named x.
	if name, ok := strings.CutPrefix(msg, "field "); ok {
		if i := strings.LastIndex(name, " not found in type "); i >= 0 {
			name = name[:i]
			return first(func(p *place) bool { return isKey(p) && p.at.Value == name })
		}
	}
	// "column C: msg", from Duration and Size: the value at that column.
	if col, _, ok := splitColumn(msg); ok {
		return first(func(p *place) bool { return p.val.Line == line && p.val.Column == col })
	}
	// "cannot unmarshal !!map into T" or "cannot unmarshal !!str `abc...`
	// into T": the first value of that kind, and text, on the line.
	if rest, ok := strings.CutPrefix(msg, "cannot unmarshal !!"); ok {
		tag, rest, _ := strings.Cut(rest, " ")
		kind := yaml.ScalarNode
		switch tag {
		case "map":
			kind = yaml.MappingNode
		case "seq":
			kind = yaml.SequenceNode
		}
		var text string
		if _, quoted, ok := strings.Cut(rest, "`"); ok {
			text, _, _ = strings.Cut(quoted, "`")
			text = strings.TrimSuffix(text, "...")
		}
		return first(func(p *place) bool {
			return p.val.Line == line && p.val.Kind == kind && strings.HasPrefix(p.val.Value, text)
		})
	}
	// Anything else, such as "mapping key "x" already defined at line
	// 3": the first key on the line.
	return first(isKey)
}

// syntaxError turns a parser error such as "yaml: line 3: could not find
// expected ':'" into an *Error.
func (d *document) syntaxError(err error) error {
	msg, _ := strings.CutPrefix(err.Error(), "yaml: ")
	line, rest := splitLine(msg)
	return &Error{File: d.name, Line: line, Msg: rest}
}

// locate places each *FieldError in err (from Validate) in the document.
// given maps the names of the flags given on the command line.
func (d *document) locate(err error, given map[string]string) error {
	if err == nil {
		return nil
	}
	var errs []error
	for _, leaf := range leaves(err, nil) {
		e := &Error{File: d.name, Msg: leaf.Error()}
		var fe *FieldError
		if errors.As(leaf, &fe) {
			e.Field, e.Msg, e.err = fe.Field, fe.Msg, fe
			if _, ok := given[fe.Field]; ok && fe.Field != "" {
				e.Flag = fe.Field
			} else if p, ok := d.paths[fe.Field]; ok && fe.Field != "" {
				e.Line, e.Column = p.at.Line, p.at.Column
			} else if fe.Field != "" {
				e.Default = true
			}
		}
		errs = append(errs, e)
	}
	return join(errs)
}

// leaves appends the errors joined in err, recursively, to out.
func leaves(err error, out []error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != nil {
				out = leaves(e, out)
			}
		}
		return out
	}
	return append(out, err)
}

// join is errors.Join, except that a single error comes back as itself, so
// errors.As and a type switch both see the *Error.
func join(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// splitLine splits "line 12: msg" into 12 and "msg"; without a line it
// returns 0 and msg.
func splitLine(msg string) (int, string) {
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, msg
	}
	num, rest, ok := strings.Cut(rest, ": ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 {
		return 0, msg
	}
	return n, rest
}

// splitColumn splits "column 7: msg" into 7 and "msg".
func splitColumn(msg string) (int, string, bool) {
	rest, ok := strings.CutPrefix(msg, "column ")
	if !ok {
		return 0, msg, false
	}
	num, rest, ok := strings.Cut(rest, ": ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 {
		return 0, msg, false
	}
	return n, rest, true
}
