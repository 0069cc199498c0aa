import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { httpBindingsOf } from "../src/rest/http-rule.js";
import { RouteTable } from "../src/rest/route-table.js";
import { openApiDocument } from "../src/openapi/document.js";
import { ProtoComments } from "../src/openapi/proto-comments.js";
import { LibraryService } from "../gen/library/v1/library_pb.js";

type Json = any;

describe("OpenAPI of server streams (library.proto's WatchShelf and FollowBooks)", () => {
  const servable = httpBindingsOf(LibraryService).filter((b) => b.method.name !== "GetFile");
  const library: Json = openApiDocument(new RouteTable(servable), ProtoComments.none, { info: { title: "Library", version: "test" } });
  const watch = library.paths["/v1/shelves/{shelf_id}/events:watch"].get;
  const follow = library.paths["/v1/books:follow"].post;

  it("is valid OpenAPI 3.1", async () => {
    expect((await new Validator().validate(structuredClone(library))).valid).toBe(true);
  });

  it("documents the 200 in both media types: SSE as text, NDJSON lines as the message", () => {
    const ok = watch.responses["200"];
    expect(Object.keys(ok.content)).toEqual(["text/event-stream", "application/x-ndjson"]);
    expect(ok.content["text/event-stream"].schema).toEqual({
      type: "string",
      description: "Server-Sent Events; each `data:` is a `library.v1.ShelfEvent` (#/components/schemas/library.v1.ShelfEvent).",
    });
    expect(ok.content["application/x-ndjson"].schema).toEqual({
      type: "string",
      description: "Newline-delimited JSON; each line is a `library.v1.ShelfEvent` (#/components/schemas/library.v1.ShelfEvent).",
    });
    // The message's schema is still a component.
    expect(library.components.schemas["library.v1.ShelfEvent"].properties.sequence.type).toBe("string");
    expect(ok.description).toContain("`id:` the message's `sequence`, `event:` its `kind` (by name), `data:` the message as JSON on one line");
    expect(ok.description).toContain('`{"error": <google.rpc.Status>}`');
    expect(ok.headers["Cache-Control"].schema).toEqual({ type: "string", const: "no-cache" });
    expect(follow.responses["200"].description).toContain("one Server-Sent Event per message (`data:` the message as JSON on one line)");
  });

  it("documents Last-Event-ID as a header parameter only where the option names a resume field", () => {
    expect(watch.parameters.find((p: Json) => p.in === "header")).toEqual({
      name: "Last-Event-ID",
      in: "header",
      description:
        "Resume the stream after this event: the `id:` of the last Server-Sent Event received (EventSource sends it when it " +
        "reconnects). Sets `after_sequence`, winning over the query parameter; a value `after_sequence` cannot take is a 400.",
      // As the query parameter's schema: int64 as a number or its decimal text.
      schema: watch.parameters.find((p: Json) => p.name === "after_sequence").schema,
    });
    expect(watch.parameters.find((p: Json) => p.in === "header").schema.type).toEqual(["integer", "string"]);
    expect(watch.parameters.map((p: Json) => `${p.in} ${p.name}`)).toEqual(["path shelf_id", "query after_sequence", "query count", "header Last-Event-ID"]);
    expect((follow.parameters ?? []).filter((p: Json) => p.in === "header")).toEqual([]);
  });

  it("lists 406 among the stream's errors, and only there", () => {
    expect(watch.responses["406"]).toEqual({ $ref: "#/components/responses/Error406" });
    expect(library.components.responses.Error406.description).toBe("Not Acceptable: `invalid_argument` (3).");
    expect(library.paths["/v1/shelves/{id}"].get.responses["406"]).toBeUndefined();
  });
});
