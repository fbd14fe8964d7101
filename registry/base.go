package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/hashicorp/go-memdb"
)

// base is the state loaded from a snapshot, frozen: a sorted array and hash
// maps per table, built in a few passes instead of one radix-tree insert per
// record and index. The memdb index (the delta) lies over it and takes every
// change made since: a put goes into the delta, a delete of a record the base
// holds leaves a tombstone there. Nothing ever changes a base; a nil base is
// empty. See layers for how the two are read together.
type base struct {
	tables map[string]*baseTable
}

// baseTable is one table of a base.
type baseTable struct {
	keys []string       // primary index keys, strictly increasing
	objs []any          // the record of each key
	pos  map[string]int // key → position in keys and objs
	// secondary holds the table's non-unique indexes by index name.
	secondary map[string]*chains
}

// chains is a non-unique index of a base table: the positions of the records
// with each value of a field, linked through next (-1 ends a chain).
type chains struct {
	head map[string]int32
	next []int32
}

// baseBuilder collects the records of a snapshot and builds a base from
// them. Tables whose records are complete are built on their own goroutines
// while the rest of the snapshot is read.
type baseBuilder struct {
	b       *base
	check   recordCheck
	cur     *baseTable
	curName string
	wg      sync.WaitGroup
}

// errTableTwice reports a snapshot holding a table's records in two runs.
var errTableTwice = errors.New("the snapshot holds a table in two places")

// recordCheck checks what the records of a snapshot must be beyond their
// encoding: each has a primary key, and each table comes in one run (as
// snapshots are written, and as the base builder relies on).
type recordCheck struct {
	seen map[string]bool
	cur  string
}

// key returns the primary index key of obj, the next record of table in a
// snapshot, or an error.
func (rc *recordCheck) key(table string, obj any) ([]byte, error) {
	ok, key, err := idIndexers[table].FromObject(obj)
	if err != nil || !ok {
		return nil, fmt.Errorf("%s record without a primary key", table)
	}
	if table != rc.cur {
		if rc.seen[table] {
			return nil, fmt.Errorf("%s: %w", table, errTableTwice)
		}
		if rc.seen == nil {
			rc.seen = map[string]bool{}
		}
		rc.seen[table], rc.cur = true, table
	}
	return key, nil
}

func newBaseBuilder() *baseBuilder {
	return &baseBuilder{b: &base{tables: map[string]*baseTable{}}}
}

// add appends a record of table. Snapshots hold the tables one after the
// other, each in key order. A record without a primary key, or a table that
// comes back after another (whose build may have started), is refused.
func (bb *baseBuilder) add(table string, obj any) error {
	key, err := bb.check.key(table, obj)
	if err != nil {
		return err
	}
	if table != bb.curName {
		bb.flush()
		bb.cur = &baseTable{}
		bb.b.tables[table] = bb.cur
		bb.curName = table
	}
	bb.cur.keys = append(bb.cur.keys, unsafe.String(unsafe.SliceData(key), len(key)))
	bb.cur.objs = append(bb.cur.objs, obj)
	return nil
}

// flush starts building the table being collected.
func (bb *baseBuilder) flush() {
	if bb.cur == nil {
		return
	}
	t, name := bb.cur, bb.curName
	bb.cur, bb.curName = nil, ""
	bb.wg.Add(1)
	go func() {
		defer bb.wg.Done()
		t.build(name)
	}()
}

// finish waits for every table to be built and returns the base.
func (bb *baseBuilder) finish() *base {
	bb.flush()
	bb.wg.Wait()
	return bb.b
}

// build orders a table's records by key (keeping the last record of a key,
// as inserting them in turn would) and builds the table's maps, the
// secondary indexes in parallel with the primary one.
func (t *baseTable) build(table string) {
	for i := 1; i < len(t.keys); i++ {
		if t.keys[i] <= t.keys[i-1] {
			t.sortRecords()
			break
		}
	}
	var wg sync.WaitGroup
	t.secondary = map[string]*chains{}
	for name, field := range secondaryFields[table] {
		c := &chains{}
		t.secondary[name] = c
		wg.Go(func() { c.build(t.objs, field) })
	}
	t.pos = make(map[string]int, len(t.keys))
	for i, k := range t.keys {
		t.pos[k] = i
	}
	wg.Wait()
}

// sortRecords orders the records by key, keeping only the last one given for
// each key. Snapshots are written in key order, so this only runs for one
// written otherwise.
func (t *baseTable) sortRecords() {
	idx := make([]int, len(t.keys))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(t.keys[a], t.keys[b]) })
	keys, objs := make([]string, 0, len(idx)), make([]any, 0, len(idx))
	for n, i := range idx {
		if n+1 < len(idx) && t.keys[idx[n+1]] == t.keys[i] {
			continue // a later record of the same key wins
		}
		keys, objs = append(keys, t.keys[i]), append(objs, t.objs[i])
	}
	t.keys, t.objs = keys, objs
}

func (c *chains) build(objs []any, field func(any) string) {
	c.head = make(map[string]int32, len(objs))
	c.next = make([]int32, len(objs))
	for i, o := range objs {
		v := field(o)
		if v == "" {
			c.next[i] = -1
			continue
		}
		if h, ok := c.head[v]; ok {
			c.next[i] = h
		} else {
			c.next[i] = -1
		}
		c.head[v] = int32(i)
	}
}

// table returns the base table called name, or nil.
func (b *base) table(name string) *baseTable {
	if b == nil {
		return nil
	}
	return b.tables[name]
}

// get returns the base record of table with primary index key key, or nil.
func (b *base) get(table, key string) any {
	t := b.table(table)
	if t == nil {
		return nil
	}
	if i, ok := t.pos[key]; ok {
		return t.objs[i]
	}
	return nil
}

// has reports whether the base holds a record of table with key key.
func (b *base) has(table, key string) bool { return b.get(table, key) != nil }

// records returns the number of records in the base.
func (b *base) records() int {
	n := 0
	if b != nil {
		for _, t := range b.tables {
			n += len(t.objs)
		}
	}
	return n
}

// secondaryFields holds, per table, the field each non-unique index of the
// schema is built on.
var secondaryFields = func() map[string]map[string]func(any) string {
	m := map[string]map[string]func(any) string{}
	for name, t := range schema().Tables {
		for iname, ix := range t.Indexes {
			if p, ok := ix.Indexer.(prefixedIndexer); ok {
				if m[name] == nil {
					m[name] = map[string]func(any) string{}
				}
				m[name][iname] = p.field
			}
		}
	}
	return m
}()

// tombstone stands in the delta for a base record that was deleted. Only the
// primary index sees it: it holds the record's primary index key.
type tombstone struct{ key string }

// idKey returns the primary index key of obj, a record of table or a
// tombstone. It aliases obj's strings where it can.
func idKey(table string, obj any) string {
	if t, ok := obj.(*tombstone); ok {
		return t.key
	}
	_, key, err := idIndexers[table].FromObject(obj)
	if err != nil || len(key) == 0 {
		panic(fmt.Sprintf("registry: primary key of a %s record: %v", table, err))
	}
	return unsafe.String(unsafe.SliceData(key), len(key))
}

// layers reads the registry's state: a base, overlaid by a memdb transaction
// holding every change made since it was loaded. A record is the delta's if
// the delta has its key (a tombstone there means deleted), the base's
// otherwise.
type layers struct {
	base *base
	tx   *memdb.Txn
}

// lookup returns the record of table whose primary key is given by args (as
// the id index's FromArgs takes them), or nil.
func (st layers) lookup(table string, args ...any) any {
	raw, err := st.tx.First(table, indexID, args...)
	if err != nil {
		// Only a schema mismatch fails a lookup: a programming error.
		panic(fmt.Sprintf("registry: looking up %s: %v", table, err))
	}
	if raw != nil {
		if _, gone := raw.(*tombstone); gone {
			return nil
		}
		return raw
	}
	if st.base.table(table) == nil {
		return nil
	}
	key, err := idIndexers[table].FromArgs(args...)
	if err != nil {
		panic(fmt.Sprintf("registry: looking up %s: %v", table, err))
	}
	return st.base.get(table, string(key))
}

// inDelta reports whether the delta holds the key of obj, a base record of
// table, whether as a record or a tombstone.
func (st layers) inDelta(table string, obj any) bool { return st.deltaOf(table, obj) != nil }

// current returns the record of table with the primary key of obj, or nil.
func (st layers) current(table string, obj any) any {
	ok, key, err := idIndexers[table].FromObject(obj)
	if err != nil || !ok {
		return nil // no key, no record: memdb refuses to store one
	}
	switch d := st.deltaOf(table, obj).(type) {
	case nil:
		return st.base.get(table, unsafe.String(unsafe.SliceData(key), len(key)))
	case *tombstone:
		return nil
	default:
		return d
	}
}

// deltaOf returns what the delta holds for the primary key of obj, a record
// of table: a record, a tombstone or nil.
func (st layers) deltaOf(table string, obj any) any {
	if c, ok := obj.(*Consent); ok {
		raw, err := st.tx.First(table, indexID, c.Subject, c.ClientID)
		if err != nil {
			panic(fmt.Sprintf("registry: looking up %s: %v", table, err))
		}
		return raw
	}
	return st.deltaKey(table, idKey(table, obj))
}

// deltaKey returns what the delta holds for key in table, whose primary
// index keys records by a string as it is: a record, a tombstone or nil.
func (st layers) deltaKey(table, key string) any {
	k := keyArgs.Get().(*keyArg)
	k.key = key
	raw, err := st.tx.First(table, indexID, k.args[:]...)
	k.key = ""
	keyArgs.Put(k)
	if err != nil {
		// Only a schema mismatch fails a lookup: a programming error.
		panic(fmt.Sprintf("registry: looking up %s: %v", table, err))
	}
	return raw
}

// put stores obj in the delta, replacing any record or tombstone of its key.
func (st layers) put(table string, obj any) error { return st.tx.Insert(table, obj) }

// remove deletes obj, the current record of its key in table.
func (st layers) remove(table string, obj any) error {
	key := idKey(table, obj)
	if st.base.has(table, key) {
		return st.tx.Insert(table, &tombstone{key: key})
	}
	return st.tx.Delete(table, obj)
}

// list returns the records of table found in index by args in primary key
// order, like memdb's Get: the whole table (indexID and no args), a key
// prefix (indexID+"_prefix"), or one value of a non-unique index.
func (st layers) list(table, index string, args ...any) []any {
	it, err := st.tx.Get(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("registry: listing %s.%s: %v", table, index, err))
	}
	bt := st.base.table(table)
	if index != indexID && index != indexID+"_prefix" {
		return st.listSecondary(table, index, it, bt, args)
	}
	var out []any
	st.merge(table, it, bt, args, func(o any) bool {
		out = append(out, o)
		return true
	})
	return out
}

// scan calls fn with every record of table in primary key order until fn
// returns false.
func (st layers) scan(table string, fn func(any) bool) {
	it, err := st.tx.Get(table, indexID)
	if err != nil {
		panic(fmt.Sprintf("registry: listing %s: %v", table, err))
	}
	st.merge(table, it, st.base.table(table), nil, fn)
}

// merge calls fn, in key order, with the records of the primary index
// iterator it and those of bt whose keys start with the prefix given by args
// (all of them without args), leaving out tombstones and the base records
// whose key the delta holds, until fn returns false.
func (st layers) merge(table string, it memdb.ResultIterator, bt *baseTable, args []any,
	fn func(any) bool) {
	lo, hi := 0, 0
	if bt != nil {
		lo, hi = 0, len(bt.keys)
		if len(args) > 0 {
			p, err := idIndexers[table].(memdb.PrefixIndexer).PrefixFromArgs(args...)
			if err != nil {
				panic(fmt.Sprintf("registry: listing %s by prefix: %v", table, err))
			}
			prefix := string(p)
			lo, _ = slices.BinarySearch(bt.keys, prefix)
			hi = lo
			for hi < len(bt.keys) && strings.HasPrefix(bt.keys[hi], prefix) {
				hi++
			}
		}
	}
	d := it.Next()
	for d != nil || lo < hi {
		var c int
		switch {
		case d == nil:
			c = 1
		case lo == hi:
			c = -1
		default:
			c = strings.Compare(idKey(table, d), bt.keys[lo])
		}
		if c > 0 && !fn(bt.objs[lo]) {
			return
		}
		if c >= 0 {
			lo++
		}
		if c <= 0 {
			if _, gone := d.(*tombstone); !gone && !fn(d) {
				return
			}
			d = it.Next()
		}
	}
}

// listSecondary merges the delta's records of one value of a non-unique
// index with the base's records of that value whose key the delta does not
// hold.
func (st layers) listSecondary(table, index string, it memdb.ResultIterator,
	bt *baseTable, args []any) []any {
	type rec struct {
		key string
		obj any
	}
	var recs []rec
	for d := it.Next(); d != nil; d = it.Next() {
		recs = append(recs, rec{idKey(table, d), d})
	}
	if bt != nil {
		v, err := oneString(args)
		if err != nil {
			panic(fmt.Sprintf("registry: listing %s.%s: %v", table, index, err))
		}
		c := bt.secondary[index]
		if c == nil {
			panic(fmt.Sprintf("registry: %s has no non-unique index %s", table, index))
		}
		if i, ok := c.head[v]; ok {
			for ; i >= 0; i = c.next[i] {
				if o := bt.objs[i]; !st.inDelta(table, o) {
					recs = append(recs, rec{bt.keys[i], o})
				}
			}
		}
	}
	slices.SortFunc(recs, func(a, b rec) int { return strings.Compare(a.key, b.key) })
	out := make([]any, len(recs))
	for i, r := range recs {
		out[i] = r.obj
	}
	return out
}
