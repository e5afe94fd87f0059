package graphinput

import (
	"fmt"
	"slices"
	"strings"
)

// The filter options cut volume at the API: Graph returns only the records that match, and the
// input never downloads the others. The clause is AND-ed with the input's own
// `lastUpdateDateTime` condition.

// Severities are the members of Graph's alertSeverity that a filter can ask for (incidents use
// the same enumeration).
var Severities = []string{"unknown", "informational", "low", "medium", "high"}

// ServiceSources are the members of Graph's serviceSource: the product that raised an alert.
var ServiceSources = []string{
	"unknown", "microsoftDefenderForEndpoint", "microsoftDefenderForIdentity", "microsoftDefenderForCloudApps",
	"microsoftDefenderForOffice365", "microsoft365Defender", "azureAdIdentityProtection", "microsoftAppGovernance",
	"dataLossPrevention", "microsoftDefenderForCloud", "microsoftSentinel", "microsoftInsiderRiskManagement",
	"microsoftThreatIntelligence",
}

// cursorProperty is the property the input filters and orders on itself.
const cursorProperty = "lastUpdateDateTime"

// odataWords are the operators and literals of the $filter subset Graph's security collections
// take; any other word is a property name.
var odataWords = []string{"and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "in", "null", "true", "false"}

// resolveFilter checks filter, severities and service_sources against what Graph allows in
// $filter on the collection and returns the clause they make together ("" for none).
func (c *Config) resolveFilter(spec Spec) (string, []error) {
	var errs []error
	var parts []string
	if len(c.Severities) > 0 {
		clause, err := anyOf("severity", c.Severities, Severities)
		if err != nil {
			errs = append(errs, fmt.Errorf("severities: %w", err))
		}
		parts = append(parts, clause)
	}
	if len(c.ServiceSources) > 0 {
		if !slices.Contains(spec.Filterable, "serviceSource") {
			errs = append(errs, fmt.Errorf("service_sources: %s cannot be filtered by serviceSource; Graph allows %s", spec.Path, strings.Join(spec.Filterable, ", ")))
		} else {
			clause, err := anyOf("serviceSource", c.ServiceSources, ServiceSources)
			if err != nil {
				errs = append(errs, fmt.Errorf("service_sources: %w", err))
			}
			parts = append(parts, clause)
		}
	}
	if f := strings.TrimSpace(c.Filter); f != "" {
		if err := checkFilter(f, spec.Filterable); err != nil {
			errs = append(errs, fmt.Errorf("filter: %w (Graph allows %s in $filter on %s)", err, strings.Join(allowedInFilter(spec.Filterable), ", "), spec.Path))
		}
		parts = append(parts, "("+f+")")
	}
	return strings.Join(parts, " and "), errs
}

// anyOf renders "one of values" as OData, each value checked against the enumeration. It uses
// eq and or, which every Graph collection takes, rather than `in`.
func anyOf(property string, values, members []string) (string, error) {
	var terms, unknown []string
	for _, v := range values {
		i := slices.IndexFunc(members, func(m string) bool { return strings.EqualFold(m, strings.TrimSpace(v)) })
		if i < 0 {
			unknown = append(unknown, fmt.Sprintf("%q", v))
			continue
		}
		if term := property + " eq '" + members[i] + "'"; !slices.Contains(terms, term) {
			terms = append(terms, term)
		}
	}
	if len(unknown) > 0 {
		return "", fmt.Errorf("%s not among %s", strings.Join(unknown, ", "), strings.Join(members, ", "))
	}
	return "(" + strings.Join(terms, " or ") + ")", nil
}

func allowedInFilter(filterable []string) []string {
	return slices.DeleteFunc(slices.Clone(filterable), func(p string) bool { return p == cursorProperty })
}

// checkFilter is not an OData parser: it reads the clause's words and quoted strings, checks
// that quotes and parentheses are balanced and that every property it names is one Graph
// filters the collection on, and leaves the rest of the grammar to Graph.
func checkFilter(expr string, filterable []string) error {
	depth := 0
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '\'':
			j := i + 1
			for ; j < len(expr); j++ {
				if expr[j] == '\'' {
					if j+1 < len(expr) && expr[j+1] == '\'' { // '' is a quote inside a string
						j++
						continue
					}
					break
				}
			}
			if j >= len(expr) {
				return fmt.Errorf("the quote at position %d is never closed", i+1)
			}
			i = j + 1
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth == 0 {
				return fmt.Errorf("the ')' at position %d closes no '('", i+1)
			}
			depth--
			i++
		case isWordStart(c):
			j := i
			for j < len(expr) && isWordPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := strings.TrimLeft(expr[j:], " \t")
			switch {
			case slices.Contains(odataWords, strings.ToLower(word)):
			case strings.HasPrefix(next, "("):
				return fmt.Errorf("function %s() is not supported; compare properties with eq, ne, in, gt, ge, lt, le", word)
			case strings.EqualFold(word, cursorProperty):
				return fmt.Errorf("%s is the input's own cursor and cannot be filtered on; initial_interval sets where a first run starts", cursorProperty)
			default:
				if !slices.ContainsFunc(filterable, func(p string) bool { return strings.EqualFold(p, word) }) {
					return fmt.Errorf("property %q cannot be used in $filter", word)
				}
			}
			i = j
		case c >= '0' && c <= '9' || c == '-' || c == '+':
			// A number or a date (2026-01-01T00:00:00Z): a literal up to the next separator.
			for i < len(expr) && !strings.ContainsRune(" \t(),'", rune(expr[i])) {
				i++
			}
		default:
			i++ // spaces, commas
		}
	}
	if depth > 0 {
		return fmt.Errorf("%d '(' never closed", depth)
	}
	return nil
}

// A word starts with a letter or underscore; a date or number starts with a digit and is skipped.
func isWordStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isWordPart(c byte) bool {
	return isWordStart(c) || (c >= '0' && c <= '9') || c == '/' || c == '.'
}
