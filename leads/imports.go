package leads

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
)

// CSV imports: a file as Excel writes it (UTF-8, with or without a BOM, or
// GBK) is stored in chunks as it is uploaded, its header checked against
// the column mapping, and a background job (JobImport) streams it: each
// line is prepared as an upsert's input would be (a line with nothing to
// go on is rejected; invalid mobiles and test data are kept and flagged),
// and every 500 lines are upserted in one transaction. Memory stays flat
// whatever the file's size. Every rejected, merged and flagged line is in
// the report, with its line number.

// JobImport runs a CSV import.
const JobImport = "leads.import"

// Import limits.
const (
	importChunk    = 1 << 20
	maxImportBytes = 20 << 20 // the API's upload limit; larger files are split
	importBatch    = 500
)

// Outcomes of an import line in the report.
const (
	LineRejected = "rejected"
	LineMerged   = "merged"
	LineFlagged  = "flagged"
)

// Import is a CSV import.
type Import struct {
	ID           int64             `db:"id" json:"id"`
	CorpID       string            `db:"corp_id" json:"-"`
	Filename     string            `db:"filename" json:"filename"`
	Encoding     string            `db:"encoding" json:"encoding"`
	Mapping      map[string]string `db:"-" json:"mapping"`
	MappingJSON  string            `db:"mapping" json:"-"`
	Bytes        int64             `db:"bytes" json:"bytes"`
	RowsEstimate int64             `db:"rows_estimate" json:"rows_estimate"`
	JobID        int64             `db:"job_id" json:"job_id"`
	CreatedBy    int64             `db:"created_by" json:"created_by"`
	CreatedAt    int64             `db:"created_at" json:"created_at"`
}

// ImportResult counts what an import did.
type ImportResult struct {
	Lines    int64 `json:"lines"`
	Created  int64 `json:"created"`
	Updated  int64 `json:"updated"` // an existing person (or a line repeating another)
	Merged   int64 `json:"merged"`
	Flagged  int64 `json:"flagged"`
	Rejected int64 `json:"rejected"`
}

// ErrImportNotFound is an import of another corp or none.
var ErrImportNotFound = apperr.NotFound("import not found")

// ImportFields are the fields a column may map to.
var ImportFields = []string{"name", "mobile", "email", "unionid", "title", "region", "company", "industry", "company_size",
	"budget", "authority", "need", "timeline", "channel"}

// CreateImport stores an uploaded file and queues its import. mapping maps
// column headers to fields; encoding is utf-8, gbk or auto (UTF-8 when the
// start of the file is valid UTF-8, else GBK).
func (s *Service) CreateImport(ctx context.Context, corp string, user int64, filename string, file io.Reader, mapping map[string]string, encoding string) (*Import, error) {
	f := apperr.Fields{}
	if encoding == "" {
		encoding = "auto"
	}
	if !slices.Contains([]string{"auto", "utf-8", "gbk"}, encoding) {
		f.Add("encoding", "is auto, utf-8 or gbk")
	}
	if len(mapping) == 0 {
		f.Add("mapping", "maps the file's column headers to fields, e.g. {\"手机\": \"mobile\"}")
	}
	defs, err := s.fieldDefs(ctx, corp)
	if err != nil {
		return nil, err
	}
	targets := map[string]bool{}
	for col, field := range mapping {
		if !slices.Contains(ImportFields, field) && defs[strings.TrimPrefix(field, FieldPrefix)] == nil {
			f.Add("mapping."+col, "is one of "+strings.Join(ImportFields, ", ")+", or fields.<key> of a field of the corp")
		} else if targets[field] {
			f.Add("mapping."+col, "maps to "+field+" like another column")
		}
		targets[field] = true
	}
	if !targets["mobile"] && !targets["email"] && !targets["unionid"] {
		f.Add("mapping", "maps a column to mobile, email or unionid: lines must name their person")
	}
	if len(f) > 0 {
		return nil, f.Err()
	}
	mj, _ := json.Marshal(mapping)
	im := &Import{CorpID: corp, Filename: truncate(filename, 255), Encoding: encoding, Mapping: mapping, MappingJSON: string(mj),
		CreatedBy: user, CreatedAt: qsql.Millis(s.now())}
	if im.ID, err = s.store.createImport(ctx, im); err != nil {
		return nil, err
	}
	if err := s.storeFile(ctx, im, file); err != nil {
		_ = s.store.deleteImport(context.WithoutCancel(ctx), im.ID)
		return nil, err
	}
	// The encoding found is stored before the job is queued: it may start
	// at once, on any instance, and reads it.
	if err := s.store.setImportJob(ctx, im); err != nil {
		return nil, err
	}
	if im.JobID, err = s.jobs.Enqueue(ctx, corp, JobImport, "", map[string]int64{"import_id": im.ID}, user); err != nil {
		return nil, err
	}
	return im, s.store.setImportJob(ctx, im)
}

// storeFile reads the upload into chunks, counting its lines, and checks
// its header against the mapping.
func (s *Service) storeFile(ctx context.Context, im *Import, file io.Reader) error {
	buf := make([]byte, importChunk)
	var first []byte
	for seq := 0; ; seq++ {
		n, err := io.ReadFull(file, buf)
		if n > 0 {
			if im.Bytes += int64(n); im.Bytes > maxImportBytes {
				return apperr.Field("file", fmt.Sprintf("is larger than %d MB: split it", maxImportBytes>>20))
			}
			if seq == 0 {
				first = slices.Clone(buf[:n])
			}
			im.RowsEstimate += int64(bytes.Count(buf[:n], []byte{'\n'}))
			if err := s.store.addImportChunk(ctx, im.ID, seq, buf[:n]); err != nil {
				return err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return apperr.Field("file", "could not be read: "+err.Error())
		}
	}
	if im.Bytes == 0 {
		return apperr.Field("file", "is empty")
	}
	if im.Encoding == "auto" {
		im.Encoding = sniffEncoding(first)
	}
	header, err := csv.NewReader(decoded(bytes.NewReader(first), im.Encoding)).Read()
	if err != nil {
		return apperr.Field("file", "has no readable header line: "+err.Error())
	}
	f := apperr.Fields{}
	for col := range im.Mapping {
		if !slices.Contains(trimAll(header), col) {
			f.Add("mapping."+col, "is not a column of the file (its columns: "+truncate(strings.Join(trimAll(header), ", "), 200)+")")
		}
	}
	if len(f) > 0 {
		return f.Err()
	}
	im.RowsEstimate = max(im.RowsEstimate-1, 1) // less the header
	return nil
}

// sniffEncoding says utf-8 when the start of a file is valid UTF-8 (a
// character cut at the chunk's end aside), else gbk.
func sniffEncoding(b []byte) string {
	for i := 0; i < 4 && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	if utf8.Valid(b) {
		return "utf-8"
	}
	return "gbk"
}

// decoded reads r as UTF-8, from GBK (GB18030, its superset) or from UTF-8
// without its BOM.
func decoded(r io.Reader, encoding string) io.Reader {
	if encoding == "gbk" {
		return transform.NewReader(r, simplifiedchinese.GB18030.NewDecoder())
	}
	return transform.NewReader(r, unicode.BOMOverride(unicode.UTF8.NewDecoder()))
}

func trimAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.TrimSpace(s)
	}
	return out
}

type importCheckpoint struct {
	ImportResult
}

// RunImport is the JobImport handler. Its checkpoint is the lines done, in
// batches committed with their report lines; a resumed import skips them.
func (s *Service) RunImport(ctx context.Context, j *jobs.Job) (any, error) {
	var params struct {
		ImportID int64 `json:"import_id"`
	}
	if err := json.Unmarshal(j.Params, &params); err != nil {
		return nil, jobs.Permanent(err)
	}
	im, err := s.store.importOf(ctx, j.CorpID, params.ImportID)
	if err != nil {
		return nil, jobs.Permanent(err)
	}
	var cp importCheckpoint
	if _, err := j.LoadCheckpoint(&cp); err != nil {
		return nil, err
	}
	r := csv.NewReader(decoded(&chunkReader{ctx: ctx, store: s.store, id: im.ID}, im.Encoding))
	r.FieldsPerRecord, r.LazyQuotes, r.ReuseRecord = -1, true, true
	header, err := r.Read()
	if err != nil {
		return nil, jobs.Permanent(fmt.Errorf("header: %w", err))
	}
	cols := map[string]int{}
	for i, h := range trimAll(header) {
		if field, ok := im.Mapping[h]; ok {
			cols[field] = i
		}
	}
	var batch []importLine
	line := int64(1) // the header
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		line++
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, err
			}
			if line-1 > cp.Lines {
				batch = append(batch, importLine{line: line, err: "unreadable CSV: " + pe.Err.Error()})
			}
		} else if line-1 > cp.Lines {
			batch = append(batch, importLine{line: line, in: personOf(rec, cols)})
		}
		if len(batch) == s.importBatchSize() {
			if err := s.importBatch(ctx, j, im, batch, &cp); err != nil {
				return nil, err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if err := s.importBatch(ctx, j, im, batch, &cp); err != nil {
			return nil, err
		}
	}
	return cp.ImportResult, nil
}

// importBatchSize is how many lines one transaction upserts: fewer on
// SQLite, whose single writer every other write (callbacks included) waits
// for meanwhile.
func (s *Service) importBatchSize() int {
	if s.db.SingleWriter() {
		return importBatch / 10
	}
	return importBatch
}

// importLine is one data line of a file.
type importLine struct {
	line int64
	in   PersonIn
	err  string // unreadable
}

// personOf is a CSV record as an upsert's input.
func personOf(rec []string, cols map[string]int) PersonIn {
	get := func(field string) string {
		if i, ok := cols[field]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	p := PersonIn{Name: get("name"), Mobile: get("mobile"), Email: get("email"), UnionID: get("unionid"), Title: get("title"), Region: get("region"),
		Company: get("company"), Industry: get("industry"), Channel: get("channel"), Source: SourceImport,
		Qualification: Qualification{Budget: get("budget"), Authority: get("authority"), Need: get("need"), Timeline: get("timeline")}}
	fmt.Sscan(get("company_size"), &p.CompanySize)
	for field, i := range cols {
		if key, ok := strings.CutPrefix(field, FieldPrefix); ok && i < len(rec) {
			if p.Fields == nil {
				p.Fields = map[string]any{}
			}
			p.Fields[key] = strings.TrimSpace(rec[i])
		}
	}
	return p
}

// importBatch upserts a batch of lines in one transaction with its report
// lines, then checkpoints. The lines of new people (newPeopleOf) are
// created together (createPeopleTx); the others are upserted one by one,
// in order. A race with another writer over an identity retries the batch.
func (s *Service) importBatch(ctx context.Context, j *jobs.Job, im *Import, batch []importLine, cp *importCheckpoint) error {
	defs, err := s.fieldDefs(ctx, im.CorpID)
	if err != nil {
		return err
	}
	// What can be refused is refused before the transaction: it reads nothing.
	var report []reportLine
	var valid []importLine
	var ps []*prepared
	for _, l := range batch {
		p, field, reason := checkImportLine(l, defs)
		if reason != "" {
			report = append(report, reportLine{l.line, LineRejected, field, reason, 0})
			continue
		}
		valid, ps = append(valid, l), append(ps, p)
	}
	for attempt := 0; ; attempt++ {
		res := cp.ImportResult
		res.Lines += int64(len(batch))
		res.Rejected += int64(len(report))
		lines := slices.Clone(report)
		err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			fresh, err := s.newPeopleOf(ctx, tx, im.CorpID, ps)
			if err != nil {
				return err
			}
			var created []*prepared
			for i, p := range ps {
				if fresh[i] {
					created = append(created, p)
				}
			}
			made, err := s.createPeopleTx(ctx, tx, im.CorpID, im.CreatedBy, created, qsql.Millis(s.now()))
			if err != nil {
				return err
			}
			for i, p := range ps {
				var u *UpsertResult
				if fresh[i] {
					u, made = made[0], made[1:]
				} else if u, err = s.upsertTx(ctx, tx, im.CorpID, im.CreatedBy, p); err != nil {
					return err
				}
				lines = append(lines, res.count(valid[i].line, u)...)
			}
			return s.store.addReportLines(ctx, tx, im.ID, lines)
		})
		if errors.Is(err, errRaced) && attempt < 3 {
			continue
		}
		if err != nil {
			return err
		}
		cp.ImportResult = res
		return j.Checkpoint(ctx, cp, res.Lines, max(im.RowsEstimate, res.Lines))
	}
}

// checkImportLine prepares a line as an upsert's input, or says why it is
// rejected (field and reason).
func checkImportLine(l importLine, defs map[string]*FieldDef) (p *prepared, field, reason string) {
	if l.err != "" {
		return nil, "", l.err
	}
	p, err := prepare(l.in)
	if err != nil {
		reason = err.Error()
		if ae, ok := apperr.As(err); ok {
			for f, r := range ae.Fields {
				field, reason = f, r
			}
		}
		return nil, field, reason
	}
	if len(p.identities) == 0 {
		return nil, "mobile", "no valid mobile, email or unionid"
	}
	if _, bad := parseValues(defs, nonEmpty(p.in.Fields), false); len(bad) > 0 {
		for field, reason := range bad {
			return nil, field, reason
		}
	}
	return p, "", ""
}

// newPeopleOf tells which of ps are new people whose lines can be created
// together, before the others are upserted in order: none of their
// identities belongs to anyone yet, and each is theirs first in ps. Such a
// line meets nobody an earlier line made, so creating it first changes
// nothing; the later lines sharing its identities then find its person.
func (s *Service) newPeopleOf(ctx context.Context, tx *qsql.Tx, corp string, ps []*prepared) ([]bool, error) {
	first := map[Identity]int{} // the first of ps to have it
	var all []Identity
	for i, p := range ps {
		for _, id := range p.identities {
			if _, ok := first[id]; !ok {
				first[id] = i
				all = append(all, id)
			}
		}
	}
	owners, err := s.store.identityOwners(ctx, tx, corp, all)
	if err != nil {
		return nil, err
	}
	fresh := make([]bool, len(ps))
	for i, p := range ps {
		fresh[i] = !slices.ContainsFunc(p.identities, func(id Identity) bool { return owners[id] != 0 || first[id] != i })
	}
	return fresh, nil
}

// count adds an upserted line to the result and returns its report lines
// (its merges, and its reasons for a review).
func (r *ImportResult) count(line int64, u *UpsertResult) []reportLine {
	if u.Created {
		r.Created++
	} else {
		r.Updated++
	}
	var out []reportLine
	for _, m := range u.Merges {
		r.Merged++
		out = append(out, reportLine{line, LineMerged, "", fmt.Sprintf("person %d merged into %d (%s)", m.MergedID, m.SurvivorID, m.Reason), u.Person.ID})
	}
	if len(u.Reviews) > 0 {
		r.Flagged++
		var why []string
		for _, rv := range u.Reviews {
			why = append(why, rv.Field+": "+rv.Reason)
		}
		out = append(out, reportLine{line, LineFlagged, u.Reviews[0].Field, strings.Join(why, "; "), u.Person.ID})
	}
	return out
}

// reportLine is a line of an import's report.
type reportLine struct {
	Line    int64  `db:"line"`
	Outcome string `db:"outcome"`
	Field   string `db:"field"`
	Reason  string `db:"reason"`
	Person  int64  `db:"person_id"`
}

// Imports is a corp's newest imports, newest first.
func (s *Service) Imports(ctx context.Context, corp string, limit int) ([]Import, error) {
	return s.store.imports(ctx, corp, limit)
}

// ImportOf reads an import of a corp.
func (s *Service) ImportOf(ctx context.Context, corp string, id int64) (*Import, error) {
	return s.store.importOf(ctx, corp, id)
}

// WriteImportReport writes an import's report as CSV (UTF-8 with a BOM,
// as Excel opens it): every rejected, merged and flagged line.
func (s *Service) WriteImportReport(ctx context.Context, corp string, id int64, w io.Writer) error {
	if _, err := s.store.importOf(ctx, corp, id); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"line", "outcome", "field", "reason", "person_id"}); err != nil {
		return err
	}
	after, outcome := int64(0), ""
	for {
		lines, err := s.store.reportLines(ctx, id, after, outcome, 1000)
		if err != nil {
			return err
		}
		for _, l := range lines {
			person := ""
			if l.Person > 0 {
				person = fmt.Sprint(l.Person)
			}
			if err := cw.Write([]string{fmt.Sprint(l.Line), l.Outcome, l.Field, CSVCell(l.Reason), person}); err != nil {
				return err
			}
		}
		if len(lines) < 1000 {
			cw.Flush()
			return cw.Error()
		}
		after, outcome = lines[len(lines)-1].Line, lines[len(lines)-1].Outcome
	}
}

// CSVCell escapes a cell a spreadsheet would run as a formula.
func CSVCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// chunkReader reads an import's file chunk by chunk from the database.
type chunkReader struct {
	ctx   context.Context
	store *store
	id    int64
	seq   int
	buf   []byte
	done  bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.done {
			return 0, io.EOF
		}
		data, ok, err := c.store.importChunk(c.ctx, c.id, c.seq)
		if err != nil {
			return 0, err
		}
		if !ok {
			c.done = true
			continue
		}
		c.buf, c.seq = data, c.seq+1
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// DecodeSmallCSV reads a whole small file (a list of stores, say) as Excel
// saves a CSV: UTF-8, with or without a BOM, or GBK, sniffed from its start.
func DecodeSmallCSV(data []byte) io.Reader {
	return decoded(bytes.NewReader(data), sniffEncoding(data[:min(len(data), 64<<10)]))
}
