package state

import (
	"fmt"
	"strings"
)

// vocab is a closed set of database strings, in declaration order.
type vocab[S ~string] struct {
	what string
	all  []S
	set  map[S]bool
}

func newVocab[S ~string](what string, all ...S) vocab[S] {
	v := vocab[S]{what: what, all: all, set: make(map[S]bool, len(all))}
	for _, s := range all {
		if v.set[s] {
			panic(fmt.Sprintf("state: %s %q declared twice", what, s))
		}
		v.set[s] = true
	}
	return v
}

func (v vocab[S]) parse(s string) (S, error) {
	if v.set[S(s)] {
		return S(s), nil
	}
	return "", fmt.Errorf("unknown %s %q (one of %s)", v.what, s, v.list())
}

func (v vocab[S]) values() []S { return append([]S(nil), v.all...) }

func (v vocab[S]) list() string {
	names := make([]string, len(v.all))
	for i, s := range v.all {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// pair is one database string and its API enum value.
type pair[S ~string, P ~int32] struct {
	s S
	p P
}

// mapping is a vocab with a one-to-one API enum. The enum's zero value
// (UNSPECIFIED) maps to nothing.
type mapping[S ~string, P ~int32] struct {
	vocab[S]
	toPB   map[S]P
	fromPB map[P]S
}

func newMapping[S ~string, P ~int32](what string, pairs ...pair[S, P]) mapping[S, P] {
	all := make([]S, len(pairs))
	m := mapping[S, P]{toPB: map[S]P{}, fromPB: map[P]S{}}
	for i, p := range pairs {
		all[i] = p.s
		if p.p == 0 {
			panic(fmt.Sprintf("state: %s %q mapped to the UNSPECIFIED enum value", what, p.s))
		}
		if _, dup := m.fromPB[p.p]; dup {
			panic(fmt.Sprintf("state: %s enum value %d mapped twice", what, p.p))
		}
		m.toPB[p.s], m.fromPB[p.p] = p.p, p.s
	}
	m.vocab = newVocab(what, all...)
	return m
}

func (m mapping[S, P]) to(s S) (P, error) {
	if p, ok := m.toPB[s]; ok {
		return p, nil
	}
	return 0, fmt.Errorf("unknown %s %q (one of %s)", m.what, string(s), m.list())
}

func (m mapping[S, P]) from(p P) (S, error) {
	if s, ok := m.fromPB[p]; ok {
		return s, nil
	}
	return "", fmt.Errorf("no %s for API value %d", m.what, int32(p))
}
