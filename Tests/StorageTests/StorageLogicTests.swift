import AWSCore
import ObjectStore
import StorageCore
import Testing

@Suite("Storage logic")
struct StorageLogicTests {
    @Test func byteRanges() {
        #expect(ByteRange.closed(first: 0, last: 9).resolve(size: 100) == 0...9)
        #expect(ByteRange.closed(first: 90, last: 200).resolve(size: 100) == 90...99)
        #expect(ByteRange.closed(first: 100, last: 200).resolve(size: 100) == nil)
        #expect(ByteRange.from(95).resolve(size: 100) == 95...99)
        #expect(ByteRange.suffix(10).resolve(size: 100) == 90...99)
        #expect(ByteRange.suffix(1000).resolve(size: 100) == 0...99)
        #expect(ByteRange.suffix(0).resolve(size: 100) == nil)
        #expect(ByteRange.closed(first: 5, last: 4).resolve(size: 100) == nil)
        #expect(ByteRange.from(0).resolve(size: 0) == nil)
        #expect(ByteRange.suffix(5).headerValue == "bytes=-5")
    }

    @Test func contentRanges() {
        #expect(ContentRange(headerValue: "bytes 0-9/100") == ContentRange(first: 0, last: 9, completeLength: 100))
        #expect(ContentRange(headerValue: "bytes 5-5/*") == ContentRange(first: 5, last: 5, completeLength: nil))
        #expect(ContentRange(headerValue: "bytes 9-0/100") == nil)
        #expect(ContentRange(headerValue: "bytes 0-100/100") == nil)
        #expect(ContentRange(headerValue: "bytes */100") == nil)
        #expect(ContentRange(headerValue: "items 0-1/2") == nil)
    }

    @Test func chunkKeys() throws {
        let hex = "a868" + String(repeating: "0", count: 60)
        #expect(try ChunkKeyLayout().key(forHex: hex) == "data/a/8/6/8/\(hex)")
        for typed in ["data", "/data/", "data//", "//data"] {
            #expect(try ChunkKeyLayout(prefix: typed).prefix == "data/")
        }
        #expect(try ChunkKeyLayout(prefix: "a//b/").key(forHex: "abcd") == "a/b/a/b/c/d/abcd")
        #expect(try ChunkKeyLayout(prefix: "").key(forHex: "abcd") == "a/b/c/d/abcd")
        #expect(throws: ObjectKeyError.self) { try ChunkKeyLayout(prefix: "Data/") }
        #expect(throws: ObjectKeyError.self) { try ChunkKeyLayout(prefix: "../x") }
        #expect(throws: ObjectKeyError.self) { try ChunkKeyLayout().key(forHex: "ABCD") }
        #expect(throws: ObjectKeyError.self) { try ChunkKeyLayout().key(forHex: "abc") }
    }

    @Test func retryPolicyIsBounded() {
        let policy = RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(100), maxDelay: .seconds(1), totalBudget: .seconds(2))
        #expect(policy.delay(afterAttempt: 1, elapsed: .zero, unitRandom: 0.999)! <= .milliseconds(100))
        #expect(policy.delay(afterAttempt: 3, elapsed: .zero, unitRandom: 0.999)! <= .milliseconds(400))
        #expect(policy.delay(afterAttempt: 4, elapsed: .zero, unitRandom: 0.5) == nil)
        #expect(policy.delay(afterAttempt: 2, elapsed: .milliseconds(1990), unitRandom: 0.9) == nil)
        #expect(RetryPolicy(maxAttempts: 40, maxDelay: .seconds(5)).delay(afterAttempt: 39, elapsed: .zero, unitRandom: 0.99)! <= .seconds(5))
    }

    @Test func xmlReader() throws {
        let document = try #require(XMLElement.parse("""
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated>
              <Contents><Key>a%20b&amp;c</Key><Size>12</Size></Contents><!-- note -->
              <Contents><Key><![CDATA[x&y]]></Key><Size>0</Size></Contents>
              <NextContinuationToken>t&#43;k</NextContinuationToken></ListBucketResult>
            """))
        #expect(document.localName == "ListBucketResult")
        #expect(document.children(named: "Contents").map { $0.child("Key")!.text } == ["a%20b&c", "x&y"])
        #expect(document.child("NextContinuationToken")?.text == "t+k")
        #expect(XMLElement.parse("<a><b></a>") == nil)
        #expect(XMLElement.parse("<a>&bogus;</a>") == nil)
        #expect(XMLElement.parse("") == nil)
    }

    @Test func sharedCredentialsFile() {
        let sections = SharedCredentialsFile.parse("""
            # comment
            [default]
            aws_access_key_id = AKID
            aws_secret_access_key=SECRET
            [profile ci]
            AWS_ACCESS_KEY_ID = CI
            """)
        #expect(sections["default"]?["aws_access_key_id"] == "AKID")
        #expect(sections["default"]?["aws_secret_access_key"] == "SECRET")
        #expect(sections["ci"]?["aws_access_key_id"] == "CI")
    }
}

@Suite("Object store timestamps")
struct TimestampTests {
    @Test func s3AndHTTPDatesBecomeEpochSeconds() {
        #expect(Timestamps.parseISO8601("1970-01-01T00:00:00.000Z") == 0)
        #expect(Timestamps.parseISO8601("2026-03-05T09:50:00.000Z") == 1_772_704_200)
        #expect(Timestamps.parseISO8601("2000-02-29T12:00:01Z") == 951_825_601)
        #expect(Timestamps.parseHTTPDate("Thu, 05 Mar 2026 09:50:00 GMT") == 1_772_704_200)
        #expect(Timestamps.parseISO8601("2026-13-05T09:50:00Z") == nil)
        #expect(Timestamps.parseHTTPDate("Thursday, 05-Mar-26 09:50:00 GMT") == 1_772_704_200, "RFC 850 is accepted too")
        #expect(Timestamps.parseHTTPDate("Thu, 05 Mar 2026 09:50 GMT") == nil)
    }
}
