// Package errors: the SDK error type flannel's tencentvpc backend checks for (stand-in).
package errors

// TencentCloudSDKError is what the SDK returns on an API error.
type TencentCloudSDKError struct {
	Code    string
	Message string
}

func (e *TencentCloudSDKError) Error() string { return e.Code + ": " + e.Message }
