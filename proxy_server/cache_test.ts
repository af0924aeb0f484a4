import { assertEquals } from "../lib/testing/assert.ts";
import {
  currentAge,
  formatCacheStatus,
  freshnessLifetime,
  invalidatedUris,
  isNotModified,
  mayServeStaleDisconnected,
  mayServeStaleOnError,
  parseAge,
  parseCacheControl,
  selectAction,
  storability,
  targetedFields,
  updateStoredFields,
  validatorFields,
  varyKey,
} from "./cache.ts";

const DATE = "Wed, 25 Nov 2026 12:00:00 GMT";
const T0 = Date.parse(DATE);

function h(fields: Record<string, string> = {}): Headers {
  return new Headers(fields);
}

Deno.test("parseCacheControl() reads directives with and without quoted arguments", () => {
  const cc = parseCacheControl('Max-Age=60, no-cache="set-cookie, x", private, max-age=5');
  assertEquals(cc.get("max-age"), "60");
  assertEquals(cc.get("no-cache"), "set-cookie, x");
  assertEquals(cc.get("private"), true);
  assertEquals(parseCacheControl('no-cache="a\\"b, c", public').get("no-cache"), 'a"b, c');
  assertEquals(parseCacheControl("").size, 0);
});

Deno.test("storability() follows RFC 9111 §3 and §3.5, one rule per case", async (t) => {
  const cases: Array<
    [string, string, Record<string, string>, number, Record<string, string>, boolean, string]
  > = [
    ["plain 200 with max-age", "GET", {}, 200, { "cache-control": "max-age=60" }, true, "ok"],
    ["POST is never stored", "POST", {}, 200, { "cache-control": "max-age=60" }, false, "method"],
    ["206 is not stored", "GET", {}, 206, { "cache-control": "max-age=60" }, false, "status"],
    [
      "response no-store",
      "GET",
      {},
      200,
      { "cache-control": "no-store, max-age=60" },
      false,
      "no-store",
    ],
    [
      "request no-store",
      "GET",
      { "cache-control": "no-store" },
      200,
      { "cache-control": "max-age=60" },
      false,
      "request-no-store",
    ],
    [
      "private in a shared cache",
      "GET",
      {},
      200,
      { "cache-control": "private, max-age=60" },
      false,
      "private",
    ],
    [
      "qualified private is storable",
      "GET",
      {},
      200,
      { "cache-control": 'private="x", max-age=60' },
      true,
      "ok",
    ],
    [
      "Authorization without permission",
      "GET",
      { authorization: "Basic x" },
      200,
      { "cache-control": "max-age=60" },
      false,
      "authorization",
    ],
    [
      "Authorization with public",
      "GET",
      { authorization: "Basic x" },
      200,
      { "cache-control": "public, max-age=60" },
      true,
      "ok",
    ],
    [
      "Authorization with s-maxage",
      "GET",
      { authorization: "Basic x" },
      200,
      { "cache-control": "s-maxage=60" },
      true,
      "ok",
    ],
    [
      "Authorization with must-revalidate",
      "GET",
      { authorization: "Basic x" },
      200,
      { "cache-control": "must-revalidate, max-age=60" },
      true,
      "ok",
    ],
    [
      "Vary: * is not worth storing",
      "GET",
      {},
      200,
      { "cache-control": "max-age=60", vary: "*" },
      false,
      "vary-star",
    ],
    ["heuristic status without freshness", "GET", {}, 404, {}, true, "ok"],
    ["302 without freshness", "GET", {}, 302, {}, false, "no-freshness"],
    ["302 with Expires", "GET", {}, 302, { expires: DATE }, true, "ok"],
    [
      "no-cache alone does not permit storing",
      "GET",
      {},
      302,
      { "cache-control": "no-cache" },
      false,
      "no-freshness",
    ],
    [
      "no-cache 200 is stored (to validate)",
      "GET",
      {},
      200,
      { "cache-control": "no-cache" },
      true,
      "ok",
    ],
    [
      "any final status with max-age",
      "GET",
      {},
      299,
      { "cache-control": "max-age=60" },
      true,
      "ok",
    ],
    ["304 is never stored", "GET", {}, 304, { "cache-control": "max-age=60" }, false, "status"],
    [
      "must-understand with an unknown status",
      "GET",
      {},
      299,
      { "cache-control": "must-understand, no-store, max-age=60" },
      false,
      "status",
    ],
    [
      "must-understand overrides no-store",
      "GET",
      {},
      200,
      { "cache-control": "must-understand, no-store, max-age=60" },
      true,
      "ok",
    ],
  ];
  for (const [name, method, reqH, status, resH, storable, reason] of cases) {
    await t.step(name, () => {
      assertEquals(
        storability({ method, headers: h(reqH) }, { status, headers: h(resH) }),
        { storable, reason },
      );
    });
  }
});

Deno.test("freshnessLifetime() prefers s-maxage, max-age, Expires, then 10% heuristic", async (t) => {
  const lm = "Wed, 15 Nov 2026 12:00:00 GMT"; // ten days before DATE
  const cases: Array<[string, number, Record<string, string>, number, boolean]> = [
    ["s-maxage wins", 200, { "cache-control": "max-age=60, s-maxage=7", expires: DATE }, 7, false],
    [
      "max-age over Expires",
      200,
      { "cache-control": "max-age=60", date: DATE, expires: DATE },
      60,
      false,
    ],
    [
      "Expires minus Date",
      200,
      { date: DATE, expires: "Wed, 25 Nov 2026 12:01:40 GMT" },
      100,
      false,
    ],
    ["invalid Expires is expired", 200, { date: DATE, expires: "0" }, 0, false],
    ["invalid max-age is stale", 200, { "cache-control": "max-age=abc" }, 0, false],
    ["heuristic 10% of Last-Modified age", 200, { date: DATE, "last-modified": lm }, 86400, true],
    ["no heuristic for 302", 302, { date: DATE, "last-modified": lm }, 0, false],
    [
      "public allows heuristic",
      302,
      { date: DATE, "last-modified": lm, "cache-control": "public" },
      86400,
      true,
    ],
  ];
  for (const [name, status, fields, lifetime, heuristic] of cases) {
    await t.step(name, () => {
      assertEquals(freshnessLifetime(status, h(fields), { responseTime: T0 }), {
        lifetime,
        heuristic,
      });
    });
  }
});

Deno.test("currentAge() corrects for Age, Date skew, delay and residence (§4.2.3)", async (t) => {
  const cases: Array<[string, Record<string, string>, number, number, number, number]> = [
    ["resident only", {}, T0, T0, T0 + 5000, 5],
    ["Age plus response delay", { age: "10" }, T0 - 2000, T0, T0, 12],
    ["apparent age from Date", { date: "Wed, 25 Nov 2026 11:59:30 GMT" }, T0, T0, T0, 30],
    [
      "Date in the future gives no negative age",
      { date: "Wed, 25 Nov 2026 12:10:00 GMT" },
      T0,
      T0,
      T0,
      0,
    ],
  ];
  for (const [name, fields, requestTime, responseTime, now, age] of cases) {
    await t.step(name, () => {
      assertEquals(currentAge(h(fields), { requestTime, responseTime, now }), age);
    });
  }
});

Deno.test("selectAction() applies request and response directives", async (t) => {
  const cases: Array<[string, Record<string, string>, Record<string, string>, number, string]> = [
    ["fresh is a hit", {}, { "cache-control": "max-age=60" }, 10, "hit"],
    ["stale must validate", {}, { "cache-control": "max-age=60" }, 70, "validate:stale"],
    [
      "request no-cache validates",
      { "cache-control": "no-cache" },
      { "cache-control": "max-age=60" },
      1,
      "validate:request",
    ],
    [
      "Pragma no-cache without Cache-Control",
      { pragma: "no-cache" },
      { "cache-control": "max-age=60" },
      1,
      "validate:request",
    ],
    [
      "response no-cache validates",
      {},
      { "cache-control": "no-cache, max-age=60" },
      1,
      "validate:stale",
    ],
    [
      "request max-age older",
      { "cache-control": "max-age=5" },
      { "cache-control": "max-age=60" },
      10,
      "validate:request",
    ],
    [
      "request max-age younger",
      { "cache-control": "max-age=50" },
      { "cache-control": "max-age=60" },
      10,
      "hit",
    ],
    [
      "min-fresh unmet",
      { "cache-control": "min-fresh=55" },
      { "cache-control": "max-age=60" },
      10,
      "validate:request",
    ],
    [
      "max-stale accepts stale",
      { "cache-control": "max-stale=20" },
      { "cache-control": "max-age=60" },
      70,
      "hit",
    ],
    [
      "max-stale too small",
      { "cache-control": "max-stale=5" },
      { "cache-control": "max-age=60" },
      70,
      "validate:stale",
    ],
    [
      "bare max-stale accepts any",
      { "cache-control": "max-stale" },
      { "cache-control": "max-age=60" },
      9999,
      "hit",
    ],
    [
      "must-revalidate beats max-stale",
      { "cache-control": "max-stale" },
      { "cache-control": "max-age=60, must-revalidate" },
      70,
      "validate:stale",
    ],
    [
      "proxy-revalidate beats max-stale",
      { "cache-control": "max-stale" },
      { "cache-control": "max-age=60, proxy-revalidate" },
      70,
      "validate:stale",
    ],
    [
      "s-maxage beats max-stale",
      { "cache-control": "max-stale" },
      { "cache-control": "s-maxage=60" },
      70,
      "validate:stale",
    ],
    [
      "stale-while-revalidate",
      {},
      { "cache-control": "max-age=60, stale-while-revalidate=30" },
      80,
      "stale-hit",
    ],
    [
      "stale-while-revalidate window over",
      {},
      { "cache-control": "max-age=60, stale-while-revalidate=30" },
      95,
      "validate:stale",
    ],
  ];
  for (const [name, reqH, resH, ageSeconds, expected] of cases) {
    await t.step(name, () => {
      const a = selectAction(h(reqH), {
        status: 200,
        headers: h(resH),
        requestTime: T0,
        responseTime: T0,
      }, {
        now: T0 + ageSeconds * 1000,
      });
      assertEquals(a.kind === "validate" ? `validate:${a.reason}` : a.kind, expected);
    });
  }
});

Deno.test("mayServeStaleOnError() follows stale-if-error unless revalidation is required", async (t) => {
  const cases: Array<[string, Record<string, string>, Record<string, string>, number, boolean]> = [
    ["response stale-if-error", {}, { "cache-control": "max-age=1, stale-if-error=60" }, 30, true],
    ["window over", {}, { "cache-control": "max-age=1, stale-if-error=60" }, 61, false],
    [
      "request stale-if-error",
      { "cache-control": "stale-if-error=100" },
      { "cache-control": "max-age=1" },
      30,
      true,
    ],
    [
      "must-revalidate forbids",
      {},
      { "cache-control": "max-age=1, stale-if-error=60, must-revalidate" },
      1,
      false,
    ],
    ["nothing said", {}, { "cache-control": "max-age=1" }, 1, false],
  ];
  for (const [name, reqH, resH, staleness, expected] of cases) {
    await t.step(
      name,
      () => assertEquals(mayServeStaleOnError(h(reqH), h(resH), { staleness }), expected),
    );
  }
  // The operator's default window (--stale-if-error) applies when no directive says otherwise.
  const fallbackCases: Array<[string, Record<string, string>, Record<string, string>, boolean]> = [
    ["within the default window", {}, { "cache-control": "max-age=1" }, true],
    ["a directive wins over it", {}, { "cache-control": "max-age=1, stale-if-error=5" }, false],
    ["response no-cache", {}, { "cache-control": "no-cache" }, false],
    ["request no-cache", { "cache-control": "no-cache" }, { "cache-control": "max-age=1" }, false],
    ["must-revalidate", {}, { "cache-control": "max-age=1, must-revalidate" }, false],
  ];
  for (const [name, reqH, resH, expected] of fallbackCases) {
    await t.step(`fallback: ${name}`, () =>
      assertEquals(
        mayServeStaleOnError(h(reqH), h(resH), { staleness: 30, fallback: 60 }),
        expected,
      ));
  }
  assertEquals(
    mayServeStaleOnError(h(), h({ "cache-control": "max-age=1" }), { staleness: 61, fallback: 60 }),
    false,
  );
});

Deno.test("validatorFields() and updateStoredFields() revalidate and merge a 304 (§4.3)", () => {
  assertEquals(validatorFields(h({ etag: '"a"', "last-modified": DATE })), [
    ["if-none-match", '"a"'],
    ["if-modified-since", DATE],
  ]);
  assertEquals(validatorFields(h({})), []);
  assertEquals(
    updateStoredFields(
      [["content-length", "5"], ["etag", '"a"'], ["cache-control", "max-age=1"], ["x-old", "1"]],
      [["cache-control", "max-age=9"], ["content-length", "0"], ["connection", "close"], [
        "x-new",
        "2",
      ]],
    ),
    [["content-length", "5"], ["etag", '"a"'], ["x-old", "1"], ["cache-control", "max-age=9"], [
      "x-new",
      "2",
    ]],
  );
});

Deno.test("varyKey() builds secondary keys and refuses Vary: * (§4.1)", () => {
  const gzip = h({ "accept-encoding": "gzip" });
  const br = h({ "accept-encoding": "br" });
  assertEquals(varyKey(null, gzip), "");
  assertEquals(varyKey("*", gzip), null);
  assertEquals(varyKey("Accept-Encoding", gzip) === varyKey("accept-encoding", br), false);
  assertEquals(
    varyKey("Accept-Encoding", h()) === varyKey("accept-encoding", h({ "accept-encoding": "" })),
    false,
  );
});

Deno.test("invalidatedUris() lists the target and same-origin Location URIs (§4.4)", async (t) => {
  const cases: Array<[string, string, number, Record<string, string>, string[]]> = [
    ["GET invalidates nothing", "GET", 200, {}, []],
    ["POST invalidates its target", "POST", 200, {}, ["http://a.test/x"]],
    ["error responses invalidate nothing", "DELETE", 500, {}, []],
    ["same-origin Location and Content-Location", "PUT", 201, {
      location: "/y",
      "content-location": "http://a.test/z",
    }, [
      "http://a.test/x",
      "http://a.test/y",
      "http://a.test/z",
    ]],
    ["other-origin Location is ignored", "POST", 303, { location: "http://b.test/y" }, [
      "http://a.test/x",
    ]],
  ];
  for (const [name, method, status, fields, expected] of cases) {
    await t.step(name, () => {
      assertEquals(
        invalidatedUris(method, "http://a.test/x", { status, headers: h(fields) }),
        expected,
      );
    });
  }
});

Deno.test("isNotModified() evaluates If-None-Match before If-Modified-Since", () => {
  const res = h({ etag: '"v1"', "last-modified": DATE });
  assertEquals(isNotModified(h({ "if-none-match": '"v1"' }), res), true);
  assertEquals(
    isNotModified(h({ "if-none-match": '"v2"', "if-modified-since": DATE }), res),
    false,
  );
  assertEquals(isNotModified(h({ "if-modified-since": DATE }), res), true);
  // A comma inside a tag does not split it; `*` matches only a stored tag.
  const comma = h({ etag: 'W/"a,b"' });
  assertEquals(isNotModified(h({ "if-none-match": '"x", "a,b"' }), comma), true);
  assertEquals(isNotModified(h({ "if-none-match": '"a", "b"' }), comma), false);
  assertEquals(isNotModified(h({ "if-none-match": "*" }), comma), true);
  assertEquals(isNotModified(h({ "if-none-match": "*" }), h()), false);
  assertEquals(
    isNotModified(h({ "if-modified-since": "Wed, 01 Nov 2026 12:00:00 GMT" }), res),
    false,
  ); // RFC 9111 §4.3.2: without Last-Modified, the stored Date (else the receipt time) counts.
  const ims = h({ "if-modified-since": DATE });
  assertEquals(isNotModified(ims, h({ date: "Wed, 25 Nov 2026 11:00:00 GMT" })), true);
  assertEquals(isNotModified(ims, h({ date: "Wed, 25 Nov 2026 13:00:00 GMT" })), false);
  assertEquals(isNotModified(ims, h(), { responseTime: T0 - 1000 }), true);
  assertEquals(isNotModified(ims, h(), { responseTime: T0 + 1000 }), false);
  assertEquals(isNotModified(ims, h()), false);
});

Deno.test("formatCacheStatus() writes RFC 9211 parameters in order", () => {
  assertEquals(formatCacheStatus("netkit", { hit: true, ttl: 5 }), "netkit; hit; ttl=5");
  assertEquals(
    formatCacheStatus("netkit", { fwd: "method", fwdStatus: 201, detail: "not-storable" }),
    "netkit; fwd=method; fwd-status=201; detail=not-storable",
  );
});

Deno.test("parseAge() uses the first member of a list-valued Age (RFC 9111 §5.1)", () => {
  // "a cache encountering a message with a list-based Age field value SHOULD use the
  // first member of the field value, discarding subsequent ones"; an invalid one is ignored.
  const cases: Array<[string | null, number | undefined]> = [
    ["7200, 0", 7200], // the cache-tests' age-parse-suffix
    ["0, 7200", 0],
    ["7200,0", 7200],
    [" 60 ", 60],
    ["abc", undefined],
    ["-7200", undefined],
    ["7200.0", undefined],
    ["2147483649", 2147483648], // delta-seconds saturate (§1.2.2)
    [null, undefined],
  ];
  for (const [text, want] of cases) assertEquals(parseAge(text), want, String(text));
  // Two Age lines arrive joined by a comma: the first line counts, so the response is stale.
  const stored = {
    status: 200,
    requestTime: T0,
    responseTime: T0,
    headers: h({ date: DATE, "cache-control": "max-age=3600", age: "7200, 0" }),
  };
  assertEquals(selectAction(h(), stored, { now: T0 + 1000 }).kind, "validate");
});

Deno.test("freshnessLifetime() treats an Expires outside the HTTP-date grammar as expired (RFC 9111 §5.3)", () => {
  for (
    const expires of [
      "Thu 18 Aug 2050 02:01:18 GMT",
      "Thu, 18  Aug  2050 02:01:18 GMT",
      "Thu, 18-Aug-2050 02:01:18 GMT",
      "Thu, 18 Aug 2050 2:01:18 GMT",
    ]
  ) {
    assertEquals(freshnessLifetime(200, h({ date: DATE, expires })).lifetime, 0, expires);
  }
  // The grammar's names in another case are still a date (the suite's optimal wrong-case tests).
  const f = freshnessLifetime(200, h({ date: DATE, expires: "Thu, 26 NOV 2026 12:00:00 gmt" }));
  assertEquals(f.lifetime, 86400);
});

Deno.test("targetedFields() obeys CDN-Cache-Control over Cache-Control and Expires (RFC 9213 §2.1)", async (t) => {
  const targets = ["CDN-Cache-Control"];
  const lifetime = (fields: Record<string, string>) =>
    freshnessLifetime(200, targetedFields(h({ date: DATE, ...fields }), targets)).lifetime;
  await t.step("a valid targeted field replaces Cache-Control and Expires entirely", () => {
    assertEquals(
      lifetime({ "cache-control": "max-age=3600", "cdn-cache-control": "max-age=1" }),
      1,
    );
    assertEquals(
      lifetime({ "cache-control": "max-age=1", "cdn-cache-control": "max-age=3600" }),
      3600,
    );
    assertEquals(
      lifetime({ "cdn-cache-control": "max-age=0", expires: "Thu, 26 Nov 2026 12:00:00 GMT" }),
      0,
    );
    assertEquals(lifetime({ "cdn-cache-control": "max-age=60", expires: "0" }), 60);
    assertEquals(lifetime({ "cdn-cache-control": "foobar, max-age=60" }), 60);
    // Integers beyond delta-seconds saturate as Cache-Control's do (RFC 9111 §1.2.2).
    assertEquals(lifetime({ "cdn-cache-control": "max-age=99999999999" }), 2147483648);
  });
  await t.step(
    "its directives decide storing: no-store, private; a fresh one beats no-store",
    () => {
      const verdict = (fields: Record<string, string>) =>
        storability({ method: "GET", headers: h() }, {
          status: 200,
          headers: targetedFields(h(fields), targets),
        }).reason;
      assertEquals(
        verdict({ "cache-control": "max-age=60", "cdn-cache-control": "no-store" }),
        "no-store",
      );
      assertEquals(
        verdict({ "cache-control": "max-age=60", "cdn-cache-control": "private" }),
        "private",
      );
      assertEquals(
        verdict({ "cache-control": "no-store", "cdn-cache-control": "max-age=60" }),
        "ok",
      );
      const nc = targetedFields(
        h({ "cache-control": "max-age=60", "cdn-cache-control": "no-cache" }),
        targets,
      );
      const stored = { status: 200, requestTime: T0, responseTime: T0, headers: nc };
      assertEquals(selectAction(h(), stored, { now: T0 }).kind, "validate");
    },
  );
  await t.step("an invalid dictionary is ignored; a wrongly typed directive is dropped", () => {
    for (
      const bad of ["max-age=10000, &&&&&", "max-age =100", "max-age= 100", "MaX-aGe=100", "a,"]
    ) {
      const view = targetedFields(
        h({ "cache-control": "no-store", "cdn-cache-control": bad }),
        targets,
      );
      assertEquals(view.get("cache-control"), "no-store", bad);
    }
    const view = targetedFields(
      h({ "cdn-cache-control": 'max-age="10000", no-store=?0' }),
      targets,
    );
    assertEquals(view.get("cache-control"), "");
    assertEquals(freshnessLifetime(200, view).lifetime, 0);
  });
  await t.step("named targets come first, in the order given", () => {
    const fields = h({ "netkit-cache-control": "max-age=5", "cdn-cache-control": "max-age=9" });
    assertEquals(
      targetedFields(fields, ["Netkit-Cache-Control", ...targets]).get("cache-control"),
      "max-age=5",
    );
    assertEquals(targetedFields(fields, targets).get("cache-control"), "max-age=9");
    assertEquals(
      targetedFields(h({ "cache-control": "max-age=1" }), targets).get("cache-control"),
      "max-age=1",
    );
  });
});

Deno.test("mayServeStaleDisconnected() serves stale only when nothing asks for validation (RFC 9111 §4.2.4)", () => {
  const opts = { staleness: 30, maxStale: 60 };
  assertEquals(mayServeStaleDisconnected(h(), h({ "cache-control": "max-age=2" }), opts), true);
  for (const cc of ["must-revalidate", "proxy-revalidate", "s-maxage=2", "no-cache"]) {
    const stored = h({ "cache-control": `max-age=2, ${cc}` });
    assertEquals(mayServeStaleDisconnected(h(), stored, opts), false, cc);
  }
  const stored = h({ "cache-control": "max-age=2" });
  assertEquals(mayServeStaleDisconnected(h({ "cache-control": "no-cache" }), stored, opts), false);
  assertEquals(mayServeStaleDisconnected(h(), stored, { staleness: 61, maxStale: 60 }), false);
});
