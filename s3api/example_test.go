package s3api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/osprey-storage/osprey/s3api"
	"github.com/osprey-storage/osprey/s3api/s3mem"
)

// ExampleNewHandler serves the S3 API over the in-memory backend and talks
// to it with minio-go.
func ExampleNewHandler() {
	cfg := s3api.Config{
		Region:      "us-east-1",
		Credentials: s3api.StaticCredentials(map[string]string{"EXAMPLEKEY": "example-secret-key"}),
	}
	if err := cfg.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(s3api.NewHandler(s3mem.New(), cfg))
	defer srv.Close()

	c, err := minio.New(srv.Listener.Addr().String(), &minio.Options{
		Creds:  credentials.NewStaticV4("EXAMPLEKEY", "example-secret-key", ""),
		Region: "us-east-1",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if err := c.MakeBucket(ctx, "photos", minio.MakeBucketOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	info, err := c.PutObject(ctx, "photos", "cat.txt", strings.NewReader("meow"), 4, minio.PutObjectOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.ETag)
	// Output: 4a4be40c96ac6314e91d93f38043a634
}
