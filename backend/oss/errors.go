package oss

import (
	"context"
	"errors"

	alioss "github.com/aliyun/aliyun-oss-go-sdk/oss"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/internal/objio"
)

// serviceCode returns the OSS error code carried by err, or "".
func serviceCode(err error) string {
	var se alioss.ServiceError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// errs maps SDK errors: the S3-style codes every provider shares, OSS's
// own codes below, and the SDK's error types.
var errs = objio.ErrorMapper{
	Prefix: "oss",
	Codes: map[string]error{
		"SecurityTokenExpired": backend.ErrAuth, "UserDisable": backend.ErrAuth, "Forbidden": backend.ErrAuth,
		"QpsLimitExceeded": backend.ErrUnavailable,
	},
	Inspect: func(err error) (objio.Failure, bool) {
		var se alioss.ServiceError
		if errors.As(err, &se) {
			return objio.Failure{Status: se.StatusCode, Code: se.Code, Message: se.Message, RequestID: se.RequestID}, true
		}
		var ue alioss.UnexpectedStatusCodeError
		if errors.As(err, &ue) {
			return objio.Failure{Status: ue.Got(), Detail: ue.Error()}, true
		}
		var ce alioss.CRCCheckError
		if errors.As(err, &ce) {
			return objio.Failure{Sentinel: backend.ErrChecksum, Detail: ce.Error()}, true
		}
		return objio.Failure{}, false
	},
}

// translate turns an SDK error into one wrapping a backend sentinel; see
// objio.ErrorMapper.Translate.
func translate(ctx context.Context, what string, err error) error {
	return errs.Translate(ctx, what, err)
}
