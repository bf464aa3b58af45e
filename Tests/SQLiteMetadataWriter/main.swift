#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import MetadataStore

// A second process for the SQLite two-process test: writes its own documents and merges into
// one shared document, racing whoever else has the file open.
// Usage: sqlite-metadata-writer PATH NAME COUNT
let arguments = CommandLine.arguments
guard arguments.count == 4, let count = Int(arguments[3]), count > 0 else {
    print("usage: sqlite-metadata-writer PATH NAME COUNT")
    exit(2)
}
let (path, name) = (arguments[1], arguments[2])
do {
    let store = try await SQLiteMetadataStore.open(path: path)
    try await store.ensureSchema()
    for index in 0..<count {
        try await store.upsert("\(name)/doc-\(index)", fields: ["writer": .string(name), "n": .int(Int64(index))])
        try await store.upsert("shared", fields: ["writers": [name: .int(Int64(index))]])
        if index % 10 == 9 {
            let touches = (index - 9...index).map { MetadataUpdate(id: "\(name)/doc-\($0)", fields: ["last_access": .int(Int64($0))]) }
            let failures = try await store.bulkUpdate(touches)
            guard failures.isEmpty else { throw MetadataStoreError(.other, call: "writer", message: "\(failures)") }
        }
    }
    try await store.close()
    print("done \(name)")
} catch {
    print("failed: \(error)")
    exit(1)
}
