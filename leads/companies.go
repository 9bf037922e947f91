package leads

import (
	"strings"
	"unicode"

	"github.com/agnivade/levenshtein"
	"golang.org/x/text/width"
)

// englishSuffixes are legal forms dropped from the end of a company name,
// word by word (so "Costco" keeps its "co").
var englishSuffixes = map[string]bool{"co": true, "ltd": true, "inc": true, "llc": true, "corp": true, "corporation": true,
	"limited": true, "company": true, "gmbh": true, "plc": true}

// chineseSuffixes are legal forms dropped from the end of a Chinese name,
// longest first.
var chineseSuffixes = []string{"股份有限公司", "有限责任公司", "有限公司", "公司"}

// NormalizeCompany folds a company name to the form two spellings of one
// company share: full-width folded to half-width, lowercased, brackets,
// spaces and punctuation removed (a bracket's content is kept: 腾讯科技（深圳）
// and 腾讯科技深圳 are one), and legal suffixes dropped (有限公司, Co., Ltd.,
// Inc.). An empty result means the name had nothing but a legal form.
func NormalizeCompany(name string) string {
	s := strings.ToLower(width.Fold.String(name))
	words := strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) })
	for len(words) > 1 && englishSuffixes[words[len(words)-1]] {
		words = words[:len(words)-1]
	}
	s = strings.Join(words, "")
	for trimmed := true; trimmed; {
		trimmed = false
		for _, suf := range chineseSuffixes {
			if strings.HasSuffix(s, suf) {
				s, trimmed = strings.TrimSuffix(s, suf), true
			}
		}
	}
	return s
}

// similarCompanies reports whether two normalised names are probably one
// company spelt differently (to propose, never to merge): one holds the
// other, or they differ in at most one character in five.
func similarCompanies(a, b string) bool {
	if a == b {
		return false // the same company, not a near-duplicate
	}
	ra, rb := []rune(a), []rune(b)
	shorter := min(len(ra), len(rb))
	if shorter >= 2 && (strings.Contains(a, b) || strings.Contains(b, a)) {
		return true
	}
	return levenshtein.ComputeDistance(a, b) <= max(1, max(len(ra), len(rb))/5)
}
