package fleet

import (
	"errors"
	"os"

	"github.com/elastic/package-spec/v3/code/go/pkg/specerrors"
	"github.com/elastic/package-spec/v3/code/go/pkg/validator"
)

// Validate runs package-spec's validator on a package folder, as elastic-package does: the
// checks the package's validation.yml excludes, by code and with its reason, are dropped.
func Validate(dir string) error {
	err := validator.ValidateFromPath(dir)
	var found specerrors.ValidationErrors
	if !errors.As(err, &found) {
		return err
	}
	config, cerr := specerrors.LoadConfigFilter(os.DirFS(dir))
	if cerr != nil {
		return errors.Join(err, cerr)
	}
	result, ferr := specerrors.NewFilter(config).Run(found)
	if ferr != nil {
		return errors.Join(err, ferr)
	}
	return result.Processed
}
