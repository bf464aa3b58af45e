import Foundation
import NIOHTTP1

extension FakeRoutes {
    /// `_bulk`: NDJSON action/document pairs; `update` and `delete` actions. Every item gets its
    /// own result, and `errors` says whether any failed.
    static func bulk(defaultIndex: String?, headers: HTTPHeaders, body: Data, state: inout ClusterState) -> FakeReply {
        let contentType = headers.first(name: "Content-Type")?.split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        guard contentType == "application/x-ndjson" || contentType == "application/json" else {
            return FakeReply(status: 406, body: ["error": "Content-Type header [\(contentType)] is not supported", "status": 406])
        }
        guard body.last == UInt8(ascii: "\n") else {
            return .error(400, type: "illegal_argument_exception", reason: "The bulk request must be terminated by a newline [\\n]")
        }
        let lines = body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).map { Data($0) }
        var items = [[String: Any]]()
        var anyError = false
        var lineNumber = 0
        while lineNumber < lines.count {
            guard let action = FakeJSON.parse(lines[lineNumber]) as? [String: Any], action.count == 1,
                  let (name, metaValue) = action.first, let meta = metaValue as? [String: Any] else {
                return .error(400, type: "illegal_argument_exception", reason: "Malformed action/metadata line [\(lineNumber + 1)]")
            }
            lineNumber += 1
            guard let index = meta["_index"] as? String ?? defaultIndex, let id = meta["_id"] as? String else {
                return .error(400, type: "action_request_validation_exception", reason: "Validation Failed: 1: index is missing;2: id is missing;")
            }
            let status: Int
            var result: [String: Any]
            switch name {
            case "update":
                guard lineNumber < lines.count, let payload = FakeJSON.parse(lines[lineNumber]) as? [String: Any],
                      let doc = payload["doc"] as? [String: Any] else {
                    return .error(400, type: "action_request_validation_exception", reason: "Validation Failed: 1: script or doc is missing;")
                }
                lineNumber += 1
                if let fault = state.takeFault(call: "bulk item", id: id) {
                    (status, result) = (fault.status, ["error": ["type": fault.type, "reason": "[\(id)]: injected \(fault.type)"]])
                } else {
                    (status, result) = applyUpdate(index: index, id: id, doc: doc, upsert: payload["doc_as_upsert"] as? Bool ?? false,
                                                   state: &state)
                }
            case "delete":
                let reply = delete(index, id: id, state: &state)
                (status, result) = (reply.status, reply.body as? [String: Any] ?? [:])
            default:
                return .error(400, type: "illegal_argument_exception",
                              reason: "Malformed action/metadata line [\(lineNumber)], expected one of [create, delete, index, update] but found [\(name)]")
            }
            // Item errors carry only the inner error object, not the envelope.
            if let error = result["error"] as? [String: Any] {
                anyError = true
                var inner = error
                inner.removeValue(forKey: "root_cause")
                result = ["_index": index, "_id": id, "error": inner]
            }
            result["status"] = status
            items.append([name: result])
        }
        return FakeReply(status: 200, body: ["took": 1, "errors": anyError, "items": items])
    }
}
