package journeys

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/qiflow/qiflow/apperr"
)

// Schema is the journey graph's JSON Schema (draft 2020-12), served at
// GET /api/v1/journeys/schema; every draft is checked against it when
// saved, before the checks a schema cannot express (Graph.Validate).
//
//go:embed journey.schema.json
var Schema []byte

var compiledSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("journey.schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("journey.schema.json")
})

// printer words the schema's complaints (in English: they name JSON).
var printer = message.NewPrinter(language.English)

// checkSchema validates a graph against the schema; each violation comes
// back as a field of one 422, named by its place in the draft.
func checkSchema(field string, g Graph) error {
	sch, err := compiledSchema()
	if err != nil {
		return fmt.Errorf("journey schema: %w", err)
	}
	raw, err := json.Marshal(g)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	verr, ok := sch.Validate(inst).(*jsonschema.ValidationError)
	if !ok {
		return nil
	}
	f := apperr.Fields{}
	var leaves func(e *jsonschema.ValidationError)
	leaves = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			at := field
			if len(e.InstanceLocation) > 0 {
				at += "." + strings.Join(e.InstanceLocation, ".")
			}
			f.Add(at, e.ErrorKind.LocalizedString(printer))
			return
		}
		for _, c := range e.Causes {
			leaves(c)
		}
	}
	leaves(verr)
	return f.Err()
}
