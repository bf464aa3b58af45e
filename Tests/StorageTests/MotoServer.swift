import AWSCore
import ObjectStore
import S3ObjectStore
import StorageCore
import TestSupport

extension MotoServer {
    var credentials: AWSCredentials { AWSCredentials(accessKeyID: accessKey, secretAccessKey: secretKey) }

    func makeStore(endpoint: String? = nil, multipartThreshold: Int64 = 12 << 20, retry: RetryPolicy = RetryPolicy(),
                   credentials: (any AWSCredentialProvider)? = nil) throws -> S3ObjectStore {
        let configuration = try S3Configuration(bucket: bucket, endpoint: endpoint ?? self.endpoint,
                                                multipartThreshold: multipartThreshold, partSize: 5 << 20,
                                                connectTimeout: .seconds(2), readTimeout: .seconds(10), retry: retry)
        return S3ObjectStore(configuration: configuration, credentials: credentials ?? StaticCredentialProvider(self.credentials))
    }
}
