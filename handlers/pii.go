package handlers

import (
	"encoding/json"

	"github.com/qiflow/qiflow/auth"
	qsql "github.com/qiflow/qiflow/sql"
)

// maskMobiles masks every number of a JSON list of mobiles.
func maskMobiles(list qsql.JSON) qsql.JSON {
	var ms []string
	if json.Unmarshal(list, &ms) != nil {
		return qsql.JSON("[]")
	}
	for i := range ms {
		ms[i] = auth.MaskMobile(ms[i])
	}
	b, _ := json.Marshal(ms)
	return b
}
