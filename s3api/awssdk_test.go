package s3api_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/osprey-storage/osprey/s3api"
)

// awsClient returns an AWS SDK for Go v2 client: a second, independent
// implementation of SigV4 and of the S3 wire format.
func (ts *testServer) awsClient(t *testing.T, pathStyle bool) *s3.Client {
	t.Helper()
	endpoint := ts.srv.URL
	httpClient := ts.srv.Client()
	if !pathStyle {
		_, port, _ := net.SplitHostPort(ts.hostPort())
		endpoint = "http://" + testVHost + ":" + port
		addr := ts.hostPort()
		httpClient.Transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
	}
	cfg := aws.Config{
		Region:      testRegion,
		Credentials: credentials.NewStaticCredentialsProvider(testAccessKey, testSecret, ""),
		HTTPClient:  httpClient,
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = pathStyle
	})
}

func awsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestAWSSDKv2(t *testing.T) {
	for _, pathStyle := range []bool{true, false} {
		t.Run(fmt.Sprintf("path-style=%v", pathStyle), func(t *testing.T) {
			ts := mustServer(t)
			c := ts.awsClient(t, pathStyle)
			ctx := context.Background()
			if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("sdk")}); err != nil {
				t.Fatal(err)
			}
			_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("sdk")})
			if awsCode(err) != "BucketAlreadyOwnedByYou" {
				t.Fatalf("second create: %v", err)
			}
			data := bytes.Repeat([]byte("aws"), 100000)
			put, err := c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("sdk"), Key: aws.String("a/b.txt"), Body: bytes.NewReader(data),
				ContentType: aws.String("text/plain"), Metadata: map[string]string{"k": "v"},
			})
			if err != nil {
				t.Fatal(err)
			}
			sum := md5.Sum(data)
			if aws.ToString(put.ETag) != `"`+hex.EncodeToString(sum[:])+`"` {
				t.Fatalf("etag %s", aws.ToString(put.ETag))
			}
			got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sdk"), Key: aws.String("a/b.txt"), Range: aws.String("bytes=-5")})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(got.Body)
			got.Body.Close()
			if string(b) != "wsaws" || aws.ToString(got.ContentRange) != fmt.Sprintf("bytes %d-%d/%d", len(data)-5, len(data)-1, len(data)) {
				t.Fatalf("range get %q %s", b, aws.ToString(got.ContentRange))
			}
			head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("sdk"), Key: aws.String("a/b.txt")})
			if err != nil || aws.ToInt64(head.ContentLength) != int64(len(data)) || head.Metadata["k"] != "v" || aws.ToString(head.ContentType) != "text/plain" {
				t.Fatalf("head %+v %v", head, err)
			}
			_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("sdk"), Key: aws.String("missing")})
			var nf *types.NotFound
			if !errors.As(err, &nf) {
				t.Fatalf("head missing: %v", err)
			}
			_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sdk"), Key: aws.String("missing")})
			var nsk *types.NoSuchKey
			if !errors.As(err, &nsk) {
				t.Fatalf("get missing: %v", err)
			}
			if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("sdk"), Key: aws.String("copy"), CopySource: aws.String("sdk/a/b.txt")}); err != nil {
				t.Fatal(err)
			}

			// Multipart with three parts.
			mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("sdk"), Key: aws.String("mp")})
			if err != nil {
				t.Fatal(err)
			}
			var parts []types.CompletedPart
			md5s := md5.New()
			for i, p := range [][]byte{bytes.Repeat([]byte("x"), s3api.MinPartSize), bytes.Repeat([]byte("y"), s3api.MinPartSize), []byte("z")} {
				up, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("sdk"), Key: aws.String("mp"), UploadId: mp.UploadId,
					PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)})
				if err != nil {
					t.Fatal(err)
				}
				s := md5.Sum(p)
				md5s.Write(s[:])
				parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: up.ETag})
			}
			done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("sdk"), Key: aws.String("mp"), UploadId: mp.UploadId,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
			if err != nil {
				t.Fatal(err)
			}
			if want := `"` + hex.EncodeToString(md5s.Sum(nil)) + `-3"`; aws.ToString(done.ETag) != want {
				t.Fatalf("multipart etag %s, want %s", aws.ToString(done.ETag), want)
			}

			// Listing with pagination and a delimiter.
			for i := 0; i < 7; i++ {
				if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sdk"), Key: aws.String(fmt.Sprintf("p/%d", i)), Body: strings.NewReader("x")}); err != nil {
					t.Fatal(err)
				}
			}
			var keys []string
			pg := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("sdk"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(2)})
			for pg.HasMorePages() {
				page, err := pg.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range page.Contents {
					keys = append(keys, aws.ToString(o.Key))
				}
				for _, p := range page.CommonPrefixes {
					keys = append(keys, aws.ToString(p.Prefix))
				}
			}
			sort.Strings(keys)
			if strings.Join(keys, ",") != "a/,copy,mp,p/" {
				t.Fatalf("listing %q", keys)
			}

			// Batch delete.
			var objs []types.ObjectIdentifier
			for i := 0; i < 7; i++ {
				objs = append(objs, types.ObjectIdentifier{Key: aws.String(fmt.Sprintf("p/%d", i))})
			}
			del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("sdk"), Delete: &types.Delete{Objects: objs}})
			if err != nil || len(del.Deleted) != 7 || len(del.Errors) != 0 {
				t.Fatalf("delete objects %+v %v", del, err)
			}

			// Presigned GET.
			ps, err := s3.NewPresignClient(c).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sdk"), Key: aws.String("copy")}, s3.WithPresignExpires(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(ps.Method, ps.URL, nil)
			for k, vs := range ps.SignedHeader {
				req.Header[k] = vs
			}
			resp, err := httpClientFor(ts, pathStyle).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(body, data) {
				t.Fatalf("presigned get: %d %.200s", resp.StatusCode, body)
			}
		})
	}
}

// httpClientFor returns a plain client that reaches the test server even
// for virtual-host names.
func httpClientFor(ts *testServer, pathStyle bool) *http.Client {
	if pathStyle {
		return http.DefaultClient
	}
	addr := ts.hostPort()
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
}
