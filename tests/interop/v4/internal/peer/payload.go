package peer

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// ReadBits reads float64 values from path: one per line, 16 hex digits of the
// value's IEEE 754 bits (so -0, subnormals and every last bit travel exactly).
func ReadBits(path string) ([]float64, error) {
	if path == "" {
		return []float64{0.1, -0.0, math.SmallestNonzeroFloat64, math.MaxFloat64, 123456789.12345679}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		b, err := strconv.ParseUint(line, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("bits file: %q: %v", line, err)
		}
		out = append(out, math.Float64frombits(b))
	}
	return out, sc.Err()
}

// Bits is the hex form of each value's bits.
func Bits(fs []float64) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = fmt.Sprintf("%016x", math.Float64bits(f))
	}
	return out
}

// Detail is an error detail of n bytes (ASCII, with some JSON-escaped runes).
func Detail(n int) string {
	const unit = "large error detail <&> \"quoted\" "
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(unit)
	}
	return b.String()[:n]
}

// NewPayload is the payload an echo sends: the floats, extreme integers, text
// that JSON escapes, every byte value, and (unless nils) filled slices, maps and
// nested messages; with nils they stay nil and travel as null.
func NewPayload(fs []float64, nils bool) *Payload {
	p := &Payload{
		F64s: fs,
		F32:  1.1,
		I64:  math.MinInt64,
		U64:  math.MaxUint64,
		Text: "héllo <&> \u2028 \"q\" \\",
	}
	if len(fs) > 0 {
		p.F64 = fs[0]
	}
	if nils {
		return p
	}
	p.Bytes = make([]byte, 256)
	for i := range p.Bytes {
		p.Bytes[i] = byte(i)
	}
	p.List = []string{"a", "", "c"}
	p.Map = map[string]float64{"pi": math.Pi, "tiny": 5e-324, "neg0": math.Copysign(0, -1)}
	p.Inner = &Inner{Name: "inner", Values: []float64{1.5, -2.25}, Tags: map[string]string{"k": "v"}}
	p.Inners = []Inner{{Name: "one"}, {Name: "two", Values: []float64{0.3}}}
	return p
}

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// Compare lists every difference between what was sent and what came back.
// Floats compare by bits; a nil slice or map equals an empty one (Go code reads
// them alike with len and range).
func Compare(a, b *Payload) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if !sameFloat(a.F64, b.F64) {
		add("f64: sent %016x got %016x", math.Float64bits(a.F64), math.Float64bits(b.F64))
	}
	if len(a.F64s) != len(b.F64s) {
		add("f64s: sent %d values got %d", len(a.F64s), len(b.F64s))
	} else {
		for i := range a.F64s {
			if !sameFloat(a.F64s[i], b.F64s[i]) {
				add("f64s[%d]: sent %016x got %016x", i, math.Float64bits(a.F64s[i]), math.Float64bits(b.F64s[i]))
			}
		}
	}
	if math.Float32bits(a.F32) != math.Float32bits(b.F32) {
		add("f32: sent %v got %v", a.F32, b.F32)
	}
	if a.I64 != b.I64 || a.U64 != b.U64 {
		add("ints: sent %d %d got %d %d", a.I64, a.U64, b.I64, b.U64)
	}
	if a.Text != b.Text {
		add("text: sent %q got %q", a.Text, b.Text)
	}
	if string(a.Bytes) != string(b.Bytes) {
		add("bytes: sent %d bytes got %d", len(a.Bytes), len(b.Bytes))
	}
	if fmt.Sprint(a.List) != fmt.Sprint(b.List) || len(a.List) != len(b.List) {
		add("list: sent %q got %q", a.List, b.List)
	}
	if len(a.Map) != len(b.Map) {
		add("map: sent %d entries got %d", len(a.Map), len(b.Map))
	}
	for k, v := range a.Map {
		if w, ok := b.Map[k]; !ok || !sameFloat(v, w) {
			add("map[%s]: sent %v got %v", k, v, w)
		}
	}
	if (a.Inner == nil) != (b.Inner == nil) {
		add("inner: sent %v got %v", a.Inner, b.Inner)
	} else if a.Inner != nil && fmt.Sprint(*a.Inner) != fmt.Sprint(*b.Inner) {
		add("inner: sent %v got %v", *a.Inner, *b.Inner)
	}
	if fmt.Sprint(a.Inners) != fmt.Sprint(b.Inners) {
		add("inners: sent %v got %v", a.Inners, b.Inners)
	}
	return out
}
