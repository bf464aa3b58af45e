import Foundation

/// `_search` with a scroll, sorted by `_doc` (here: by id), `_source` filtering, and
/// `_search/scroll`, in ES's shapes. The scroll id carries the index, page size, fields and
/// offset, so the fake keeps no scroll state.
enum FakeSearch {
    static func start(_ index: String, body: Data, state: ClusterState) -> FakeReply {
        guard state.indices[index] != nil else {
            return .error(404, type: "index_not_found_exception", reason: "no such index [\(index)]", index: index)
        }
        let request = FakeJSON.parse(body) as? [String: Any] ?? [:]
        let size = request["size"] as? Int ?? 10
        let fields = (request["_source"] as? [Any])?.compactMap { $0 as? String }
        return page(index: index, size: size, fields: fields, offset: 0, state: state)
    }

    static func next(body: Data, state: ClusterState) -> FakeReply {
        let request = FakeJSON.parse(body) as? [String: Any] ?? [:]
        guard let id = request["scroll_id"] as? String, let data = Data(base64Encoded: id),
              let scroll = FakeJSON.parse(data) as? [String: Any], let index = scroll["index"] as? String,
              let size = scroll["size"] as? Int, let offset = scroll["offset"] as? Int else {
            return .error(400, type: "illegal_argument_exception", reason: "Cannot parse scroll id")
        }
        return page(index: index, size: size, fields: scroll["fields"] as? [String], offset: offset, state: state)
    }

    private static func page(index: String, size: Int, fields: [String]?, offset: Int, state: ClusterState) -> FakeReply {
        let documents = (state.indices[index] ?? [:]).sorted { $0.key < $1.key }
        let slice = documents.dropFirst(offset).prefix(size)
        let hits: [[String: Any]] = slice.map { id, document in
            var source = document.source
            if let fields { source = source.filter { fields.contains($0.key) } }
            return ["_index": index, "_id": id, "_score": NSNull(), "_source": source, "sort": [0]]
        }
        var scroll: [String: Any] = ["index": index, "size": size, "offset": offset + slice.count]
        if let fields { scroll["fields"] = fields }
        return FakeReply(status: 200, body: [
            "_scroll_id": Data(FakeJSON.data(scroll)).base64EncodedString(), "took": 1, "timed_out": false,
            "_shards": ["total": 1, "successful": 1, "skipped": 0, "failed": 0],
            "hits": ["total": ["value": documents.count, "relation": "eq"], "max_score": NSNull(), "hits": hits],
        ])
    }
}
