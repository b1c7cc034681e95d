package peer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"go-micro.dev/v4/errors"
)

var (
	outMu sync.Mutex
	// stdout is the real standard output. go-micro v4's default logger
	// prints with fmt.Printf, i.e. to os.Stdout, so os.Stdout is pointed at
	// stderr to keep stdout for results only.
	stdout = os.Stdout
)

func init() { os.Stdout = os.Stderr }

// Emit writes v as one JSON line on stdout.
func Emit(v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		_ = enc.Encode(map[string]string{"marshal_error": err.Error()})
	}
	outMu.Lock()
	defer outMu.Unlock()
	_, _ = stdout.Write(buf.Bytes())
}

// Line writes a plain text line on stdout (READY markers).
func Line(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	_, _ = fmt.Fprintf(stdout, format+"\n", args...)
}

// EmitError writes {"error": {id, code, detail, status}} for err. Errors that
// are not go-micro errors become {"detail": text}.
func EmitError(err error) {
	Emit(map[string]any{"error": errors.Parse(err.Error())})
}

// Fatal reports a setup problem on stderr and exits with status 2.
func Fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}
