import Foundation
import NIOHTTP1

/// The REST calls the fake answers, on the cluster state, under its lock.
enum FakeRoutes {
    static func route(method: HTTPMethod, segments: [String], headers: HTTPHeaders, body: Data,
                      state: inout ClusterState) -> FakeReply {
        let call: String
        switch (method, segments.count) {
        case (.GET, 2) where segments == ["_cluster", "health"]: call = "health"
        case (.PUT, 1): call = "create index"
        case (.POST, 2) where segments[1] == "_mget", (.GET, 2) where segments[1] == "_mget": call = "_mget"
        case (.POST, 3) where segments[1] == "_update": call = "_update"
        case (.POST, 1) where segments[0] == "_bulk", (.POST, 2) where segments[1] == "_bulk": call = "_bulk"
        case (.DELETE, 3) where segments[1] == "_doc": call = "delete"
        case (.POST, 2) where segments == ["_search", "scroll"]: call = "scroll"
        case (.DELETE, 2) where segments == ["_search", "scroll"]: call = "clear scroll"
        case (.POST, 2) where segments[1] == "_search": call = "_search"
        default:
            return FakeReply(status: 400, body: ["error": "no handler found for uri [/\(segments.joined(separator: "/"))] and method [\(method.rawValue)]",
                                                 "status": 400])
        }
        state.requestCounts[call, default: 0] += 1
        if let fault = state.takeFault(call: call, id: segments.count == 3 ? segments[2] : nil) {
            return .error(fault.status, type: fault.type, reason: "injected \(fault.type)", index: segments.first)
        }
        switch call {
        case "health": return health(state)
        case "create index": return createIndex(segments[0], body: body, state: &state)
        case "_mget": return multiGet(segments[0], body: body, state: state)
        case "_update": return update(segments[0], id: segments[2], body: body, state: &state)
        case "_bulk": return bulk(defaultIndex: segments.count == 2 ? segments[0] : nil, headers: headers, body: body, state: &state)
        case "_search": return FakeSearch.start(segments[0], body: body, state: state)
        case "scroll": return FakeSearch.next(body: body, state: state)
        case "clear scroll": return FakeReply(status: 200, body: ["succeeded": true, "num_freed": 1])
        default: return delete(segments[0], id: segments[2], state: &state)
        }
    }

    static func health(_ state: ClusterState) -> FakeReply {
        FakeReply(status: 200, body: [
            "cluster_name": "fake-elasticsearch", "status": state.clusterStatus, "timed_out": false,
            "number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": state.indices.count,
            "active_shards": state.indices.count, "relocating_shards": 0, "initializing_shards": 0,
            "unassigned_shards": 0, "active_shards_percent_as_number": 100.0,
        ])
    }

    static func createIndex(_ name: String, body: Data, state: inout ClusterState) -> FakeReply {
        guard name == name.lowercased(), !name.hasPrefix("_"), !name.hasPrefix("-") else {
            return .error(400, type: "invalid_index_name_exception", reason: "Invalid index name [\(name)]", index: name)
        }
        guard body.isEmpty || FakeJSON.parse(body) is [String: Any] else {
            return .error(400, type: "parse_exception", reason: "request body must be a JSON object")
        }
        guard state.indices[name] == nil else {
            return .error(400, type: "resource_already_exists_exception", reason: "index [\(name)/_na_] already exists", index: name)
        }
        state.indices[name] = [:]
        state.createIndexBodies.append(body)
        return FakeReply(status: 200, body: ["acknowledged": true, "shards_acknowledged": true, "index": name])
    }

    static func multiGet(_ index: String, body: Data, state: ClusterState) -> FakeReply {
        let request = FakeJSON.parse(body) as? [String: Any]
        let ids = (request?["ids"] as? [Any])?.compactMap { $0 as? String }
            ?? (request?["docs"] as? [[String: Any]])?.compactMap { $0["_id"] as? String } ?? []
        guard !ids.isEmpty else {
            return .error(400, type: "action_request_validation_exception", reason: "Validation Failed: 1: no documents to get;")
        }
        let docs: [[String: Any]] = ids.map { id in
            guard let documents = state.indices[index] else {
                return ["_index": index, "_id": id,
                        "error": FakeReply.errorObject(type: "index_not_found_exception", reason: "no such index [\(index)]", index: index)]
            }
            guard let document = documents[id] else { return ["_index": index, "_id": id, "found": false] }
            return ["_index": index, "_id": id, "_version": document.version, "_seq_no": document.seqNo,
                    "_primary_term": 1, "found": true, "_source": document.source]
        }
        return FakeReply(status: 200, body: ["docs": docs])
    }

    static func update(_ index: String, id: String, body: Data, state: inout ClusterState) -> FakeReply {
        guard let request = FakeJSON.parse(body) as? [String: Any], let doc = request["doc"] as? [String: Any] else {
            return .error(400, type: "action_request_validation_exception", reason: "Validation Failed: 1: script or doc is missing;")
        }
        let upsert = request["doc_as_upsert"] as? Bool ?? false
        let (status, result) = applyUpdate(index: index, id: id, doc: doc, upsert: upsert, state: &state)
        return FakeReply(status: status, body: result)
    }

    /// One partial update, as `_update` and each `_bulk` update item perform it. Returns the
    /// status and either the result or an `{"error": ...}` body.
    static func applyUpdate(index: String, id: String, doc: [String: Any], upsert: Bool,
                            state: inout ClusterState) -> (Int, [String: Any]) {
        guard state.indices[index] != nil else {
            let reply = FakeReply.indexNotFound(index)
            return (reply.status, reply.body as? [String: Any] ?? [:])
        }
        var result: [String: Any] = ["_index": index, "_id": id, "_primary_term": 1]
        if var existing = state.indices[index]?[id] {
            let merged = merge(existing.source, doc)
            if FakeJSON.text(merged) == FakeJSON.text(existing.source) {
                result["result"] = "noop"
                result["_shards"] = ["total": 0, "successful": 0, "failed": 0]
            } else {
                existing.source = merged
                existing.version += 1
                existing.seqNo = state.nextSeqNo
                state.nextSeqNo += 1
                state.indices[index]?[id] = existing
                result["result"] = "updated"
                result["_shards"] = ["total": 2, "successful": 1, "failed": 0]
            }
            result["_version"] = existing.version
            result["_seq_no"] = existing.seqNo
            return (200, result)
        }
        guard upsert else {
            let reply = FakeReply.error(404, type: "document_missing_exception", reason: "[\(id)]: document missing", index: index)
            return (reply.status, reply.body as? [String: Any] ?? [:])
        }
        let created = FakeDocument(source: doc, version: 1, seqNo: state.nextSeqNo)
        state.nextSeqNo += 1
        state.indices[index]?[id] = created
        result["result"] = "created"
        result["_shards"] = ["total": 2, "successful": 1, "failed": 0]
        result["_version"] = 1
        result["_seq_no"] = created.seqNo
        return (201, result)
    }

    /// Elasticsearch's partial-document merge: objects merge recursively, anything else (null
    /// included) replaces.
    static func merge(_ source: [String: Any], _ changes: [String: Any]) -> [String: Any] {
        var result = source
        for (key, value) in changes {
            if let old = result[key] as? [String: Any], let new = value as? [String: Any] {
                result[key] = merge(old, new)
            } else {
                result[key] = value
            }
        }
        return result
    }

    static func delete(_ index: String, id: String, state: inout ClusterState) -> FakeReply {
        guard state.indices[index] != nil else { return .indexNotFound(index) }
        let seqNo = state.nextSeqNo
        state.nextSeqNo += 1
        var result: [String: Any] = ["_index": index, "_id": id, "_primary_term": 1, "_seq_no": seqNo,
                                     "_shards": ["total": 2, "successful": 1, "failed": 0]]
        guard let existing = state.indices[index]?.removeValue(forKey: id) else {
            result["_version"] = 1
            result["result"] = "not_found"
            return FakeReply(status: 404, body: result)
        }
        result["_version"] = existing.version + 1
        result["result"] = "deleted"
        return FakeReply(status: 200, body: result)
    }
}
