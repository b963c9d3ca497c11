package cos

import (
	"context"
	"errors"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/internal/objio"
)

// serviceCode returns the COS error code carried by err, or "".
func serviceCode(err error) string {
	var er *cossdk.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// errs maps SDK errors: the S3-style codes every provider shares and
// COS's own codes below. The SDK reports CRC mismatches as plain errors,
// which therefore count as transport failures (backend.ErrUnavailable).
var errs = objio.ErrorMapper{
	Prefix: "cos",
	Codes: map[string]error{
		"ExpiredToken":   backend.ErrAuth,
		"InvalidRequest": backend.ErrInvalid, "InvalidURI": backend.ErrInvalid,
	},
	Inspect: func(err error) (objio.Failure, bool) {
		var er *cossdk.ErrorResponse
		if !errors.As(err, &er) {
			return objio.Failure{}, false
		}
		f := objio.Failure{Code: er.Code, Message: er.Message, RequestID: er.RequestID}
		if er.Response != nil {
			f.Status = er.Response.StatusCode
			if f.RequestID == "" {
				f.RequestID = er.Response.Header.Get("X-Cos-Request-Id")
			}
		}
		return f, true
	},
}

// translate turns an SDK error into one wrapping a backend sentinel; see
// objio.ErrorMapper.Translate.
func translate(ctx context.Context, what string, err error) error {
	return errs.Translate(ctx, what, err)
}
