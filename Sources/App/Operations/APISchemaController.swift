import Vapor

/// `GET /api/schema/`: the OpenAPI 3.1 document of this API (`Resources/openapi.yaml`).
struct APISchemaController: RouteCollection {
    /// The document's text, read once at start-up; nil when the file is missing.
    let document: String?
    let path: String

    static func load(resourcesDirectory: String) -> APISchemaController {
        let path = resourcesDirectory + "openapi.yaml"
        return APISchemaController(document: try? String(contentsOfFile: path, encoding: .utf8), path: path)
    }

    func boot(routes: any RoutesBuilder) throws {
        routes.get("api", "schema", use: schema)
    }

    func schema(req: Request) throws -> Response {
        guard let document else {
            throw HTTPProblem(.notFound, detail: "The OpenAPI document is missing from this installation (\(path)).")
        }
        return Response(status: .ok, headers: ["Content-Type": "application/yaml; charset=utf-8"], body: .init(string: document))
    }
}
