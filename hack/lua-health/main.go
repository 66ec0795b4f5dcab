// Command lua-health evaluates an Argo CD resource health script (health.lua) with
// gopher-lua, set up the way Argo CD's util/lua (VM.ExecuteHealthLua) sets it up for a
// `resource.customizations.health.<group_kind>` key of argocd-cm. The tests use it to check
// argocd/health.lua in the engine Argo CD really uses, not only in C Lua (lupa), whose
// standard library and number handling differ.
//
//	lua-health [-open-libs] SCRIPT < objects
//
// stdin holds JSON values: resources, one per line (or any whitespace between them), or
// arrays of resources. For each resource one JSON line is printed:
//
//	{"status": "...", "message": "..."}
//
// plus "error": true when the script failed; status is then Unknown and message the error,
// as Argo CD reports a failing health check.
//
// Only the script is evaluated: gitops-engine's GetResourceHealth answers
// Progressing/"Pending deletion" itself for a resource with a deletionTimestamp (and no hook
// finalizer) before any script runs.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// Argo CD cancels a script after one second (runLuaWithResourceActionParameters).
const timeout = time.Second

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   bool   `json:"error,omitempty"`
}

// The status codes of gitops-engine's health package; anything else becomes Unknown.
var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

func main() {
	openLibs := flag.Bool("open-libs", false,
		"all standard libraries, as with resource.customizations.useOpenLibs.<group_kind>: \"true\" (Argo CD's built-in scripts also get them)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: lua-health [-open-libs] SCRIPT < resources.json")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	script, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fail(err)
	}

	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false) // messages stay readable: "a -> b", not "a \u003e b"

	dec := json.NewDecoder(bufio.NewReader(os.Stdin))
	for {
		var value any
		if err := dec.Decode(&value); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			out.Flush()
			fail(fmt.Errorf("reading resources: %w", err))
		}
		resources := []any{value}
		if list, ok := value.([]any); ok {
			resources = list
		}
		for _, obj := range resources {
			if err := enc.Encode(evaluate(string(script), obj, *openLibs)); err != nil {
				fail(err)
			}
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "lua-health:", err)
	os.Exit(2)
}

// evaluate runs the script for one resource in a fresh state, as Argo CD does for every
// assessment: globals a script sets (e.g. a non-local `hs`) never leak into the next one.
func evaluate(script string, obj any, openLibs bool) result {
	hs, err := health(script, obj, openLibs)
	if err != nil {
		return result{Status: "Unknown", Message: err.Error(), Error: true}
	}
	return hs
}

func health(script string, obj any, openLibs bool) (result, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer L.Close()
	// Without open libs Argo CD opens exactly package, base (_G: ipairs, pairs, tostring,
	// tonumber, type, error, pcall, ...) and table. There is no string or math library:
	// string.format, ("x"):upper() or math.max fail there although C Lua accepts them.
	for _, open := range []lua.LGFunction{lua.OpenPackage, lua.OpenBase, lua.OpenTable} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(open), Protect: true}); err != nil {
			return result{}, err
		}
	}
	// Argo CD also "opens" a safe os library (time and date only), but it registers it under
	// the name of the table library, which is already loaded, so that is a no-op: scripts
	// have no global `os`, only `require("os")` through the preload below.
	L.PreloadModule(lua.OsLibName, loadSafeOs)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	L.SetContext(ctx)

	L.SetGlobal("obj", toLua(L, obj))
	fn, err := L.LoadString(script)
	if err == nil {
		L.Push(fn)
		err = L.PCall(0, lua.MultRet, nil)
	}
	if err != nil {
		// Argo CD drops the Lua stack trace of runtime errors: users see only the message.
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = ""
		}
		return result{}, err
	}
	return fromLua(L.Get(-1))
}

// fromLua reads the returned value through JSON like Argo CD (gopher-json, then
// encoding/json into a {status, message} struct), so a non-string status or message is an
// error as it is there, and an empty table (encoded as []) is an empty health status.
func fromLua(value lua.LValue) (result, error) {
	switch value.Type() {
	case lua.LTNil:
		return result{}, nil
	case lua.LTTable:
	default:
		return result{}, fmt.Errorf("expect table output from Lua script, not %s", value.Type())
	}
	encoded, err := luajson.Encode(value)
	if err != nil {
		return result{}, err
	}
	var hs struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(encoded, &hs); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Value == "array" {
			return result{}, nil
		}
		return result{}, err
	}
	if !validStatus[hs.Status] {
		return result{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return result{Status: hs.Status, Message: hs.Message}, nil
}

// toLua maps decoded JSON onto Lua values the way Argo CD's decodeValue maps the
// resource's unstructured content. Argo CD sees JSON integers as int64 where encoding/json
// gives float64; both end up as the same float64 LNumber. Object keys always go to the
// hash part; a null array element is dropped by Append, so later elements move up.
func toLua(L *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		arr := L.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(L, item))
		}
		return arr
	case map[string]any:
		tbl := L.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), toLua(L, item))
		}
		return tbl
	}
	return lua.LNil
}

// loadSafeOs is what `require("os")` returns in Argo CD: gopher-lua's own os.time and
// os.date (Argo CD's copies of them), nothing that reads the environment, files or exits.
func loadSafeOs(L *lua.LState) int {
	full := lua.NewState()
	defer full.Close()
	mod := L.NewTable()
	for _, name := range []string{"time", "date"} {
		mod.RawSetString(name, L.NewFunction(full.GetField(full.GetGlobal("os"), name).(*lua.LFunction).GFunction))
	}
	L.Push(mod)
	return 1
}
