package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// decodeBody decodes a JSON request body strictly into v. An unknown field
// or a value of the wrong type is a field error named by its JSON path
// ("staff[0].daily_cap": "must be a whole number"), never a Go type name:
// the body is first checked against v's shape, then decoded.
func decodeBody(body []byte, v any) (fields map[string]string, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, errors.New("the body is empty; send a JSON object")
		}
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("the body has more than one JSON value")
	}
	fields = map[string]string{}
	checkShape(raw, reflect.TypeOf(v), "", fields)
	if len(fields) > 0 {
		return fields, nil
	}
	return nil, json.Unmarshal(body, v)
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	timeType        = reflect.TypeFor[time.Time]()
)

// checkShape records in out, by path, every place where raw (a decoded
// JSON value) does not fit type t.
func checkShape(raw any, t reflect.Type, path string, out map[string]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if raw == nil || t.Kind() == reflect.Interface {
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, reflect.New(t).Interface()); err != nil {
			out[path] = expected(t)
		}
		return
	}
	wrong := func() { out[path] = expected(t) }
	switch x := raw.(type) {
	case bool:
		if t.Kind() != reflect.Bool {
			wrong()
		}
	case string:
		if t.Kind() != reflect.String {
			wrong()
		}
	case json.Number:
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if _, err := strconv.ParseInt(x.String(), 10, t.Bits()); err != nil {
				wrong()
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if _, err := strconv.ParseUint(x.String(), 10, t.Bits()); err != nil {
				wrong()
			}
		case reflect.Float32, reflect.Float64:
		default:
			wrong()
		}
	case []any:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			wrong()
			return
		}
		for i, e := range x {
			checkShape(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for k, e := range x {
				checkShape(e, t.Elem(), join(path, k), out)
			}
		case reflect.Struct:
			known := jsonFields(t)
			for k, e := range x {
				ft, ok := known[k]
				if !ok {
					out[join(path, k)] = "is not a known field"
					continue
				}
				checkShape(e, ft, join(path, k), out)
			}
		default:
			wrong()
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonFields maps a struct's JSON names to their types, embedded structs' included.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			et := f.Type
			for et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, own := out[k]; !own {
						out[k] = v
					}
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// expected says what a value of type t must be, in a user's words.
func expected(t reflect.Type) string {
	if t == timeType {
		return "must be a time such as 2026-11-24T10:00:00+08:00"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "must be a whole number"
	case reflect.Float32, reflect.Float64:
		return "must be a number"
	case reflect.String:
		return "must be text"
	case reflect.Bool:
		return "must be true or false"
	case reflect.Slice, reflect.Array:
		return "must be a list"
	case reflect.Map, reflect.Struct:
		return "must be an object"
	}
	return "has the wrong type"
}
