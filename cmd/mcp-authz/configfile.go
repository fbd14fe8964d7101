package main

import (
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// readConfigFile reads the YAML file at path over cfg. Keys it does not
// know and values of the wrong kind are refused, named by their YAML key.
// resources may also be one comma-separated string, or a list of URLs.
func readConfigFile(path string, cfg *config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty: all defaults
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: want keys such as issuer: at the top, got %s",
			path, nodeKind(root))
	}
	resourcesAsList(root)
	var problems []error
	checkNode(root, reflect.TypeFor[config](), "", &problems)
	if len(problems) > 0 {
		return fmt.Errorf("config file %s: %w", path, errors.Join(problems...))
	}
	if err := root.Decode(cfg); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// resourcesAsList rewrites a resources value written as a comma-separated
// string, and list items written as bare URLs, into the list of url keys
// the struct reads. The nodes keep their line numbers for errors.
func resourcesAsList(root *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "resources" {
			continue
		}
		v := root.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			list := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: v.Line,
				Column: v.Column}
			for _, u := range splitList(v.Value) {
				list.Content = append(list.Content, urlNode(v, u))
			}
			root.Content[i+1] = list
			continue
		}
		if v.Kind == yaml.SequenceNode {
			for j, item := range v.Content {
				if item.Kind == yaml.ScalarNode && item.Tag != "!!null" {
					v.Content[j] = urlNode(item, item.Value)
				}
			}
		}
	}
}

// urlNode is the mapping {url: u} at the place of the node at.
func urlNode(at *yaml.Node, u string) *yaml.Node {
	scalar := func(v string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Line: at.Line,
			Column: at.Column}
	}
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: at.Line, Column: at.Column,
		Content: []*yaml.Node{scalar("url"), scalar(u)}}
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType        = reflect.TypeFor[time.Duration]()
)

// checkNode compares the YAML node n, found at the dotted key path, with
// the Go type t it will be decoded into, and adds a problem for each
// unknown key and each value that does not decode, named by its key and
// line rather than by Go types.
func checkNode(n *yaml.Node, t reflect.Type, path string, problems *[]error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	custom := reflect.PointerTo(t).Implements(textUnmarshalerType) ||
		reflect.PointerTo(t).Implements(yamlUnmarshalerType)
	switch {
	case custom:
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				*problems = append(*problems, fmt.Errorf("line %d: unknown key %s",
					k.Line, joinKey(path, k.Value)))
				continue
			}
			checkNode(v, ft, joinKey(path, k.Value), problems)
		}
		return
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) &&
		n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), problems)
		}
		return
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkNode(n.Content[i+1], t.Elem(), joinKey(path, n.Content[i].Value), problems)
		}
		return
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		var te *yaml.TypeError
		if custom || !errors.As(err, &te) {
			*problems = append(*problems, fmt.Errorf("line %d: %s: %w", n.Line, path, err))
			return
		}
		*problems = append(*problems, fmt.Errorf("line %d: %s: got %s, want %s",
			n.Line, path, nodeKind(n), describeType(t)))
	}
}

// yamlFields maps the YAML keys of a struct type to their field types,
// following yaml.v3's rules (lower-cased field name without a tag, "-"
// skipped, inline structs merged).
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") && f.Type.Kind() == reflect.Struct {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nodeKind says what a YAML node holds, for error messages.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping of keys"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// describeType says in YAML terms what a Go type accepts.
func describeType(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 90s, 10m or 720h"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.String:
		return "a single value"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "a list such as [a, b]"
	}
	return "a mapping of keys"
}
