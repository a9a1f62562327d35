/**
 * The Logs Insights grammar checker, and every query the project ships held to it: saved
 * queries and dashboard widgets of the synthesized template, the enrichment's queries, and
 * documentation blocks marked as Logs Insights. The drill's fake Logs endpoint refuses what
 * the checker refuses.
 */
import { CloudWatchLogsClient, StartQueryCommand } from "@aws-sdk/client-cloudwatch-logs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUERIES } from "../../operations/alarm-catalog.ts";
import { renderQuery } from "../../operations/queries.ts";
import { synthOnce } from "../cdk/synth.ts";
import { FAKE_CLIENT_CONFIG, FakeLogs } from "./fake-alarm-endpoints.ts";
import { checkQuery, parseQuery } from "./logs-insights-grammar.ts";
import {
  dashboardQueries,
  docFiles,
  docQueries,
  enrichmentQueries,
  markdownQueries,
  type ShippedQuery,
  templateQueries,
} from "./shipped-queries.ts";

/** Queries of the AWS documentation's examples (CWL_QuerySyntax*, CWL_QuerySyntax-examples). */
const VALID = [
  "fields @timestamp, @message | sort @timestamp desc | limit 20",
  "fields @timestamp, @message | filter (range>3000) | sort @timestamp desc | limit 20",
  "fields @timestamp, @message | filter (range>3000 and accountId=123456789012) | sort @timestamp desc | limit 20",
  "filter @message like /Exception/ | stats count(*) as exceptionCount by bin(1h) | sort exceptionCount desc",
  'filter @type = "REPORT" | stats avg(@duration), max(@duration), min(@duration) by bin(5m)',
  'filter @message not like /(?i)debug/ and @logStream in ["a", "b"]',
  "filter ispresent(userId) and not isempty(userId) | dedup userId | display userId",
  'parse @message "user=*, action=*" as user, action | stats count(*) by user, action',
  "parse @message /(?<NetworkInterface>eni-.*?) / | display NetworkInterface",
  "stats pct(@duration, 99) as p99, count_distinct(@requestId) as ids by bin(1m)",
  'fields `field with spaces`, strlen(@message) as n | filter n >= 10 and `field with spaces` != ""',
  'filter @message =~ /[0-9]+ ms/ | fields concat(a, "-", b) as ab',
  "stats sum(bytes) / count(*) as avgBytes by srcAddr | sort avgBytes desc | limit 10",
  "fields @timestamp # a comment\n| filter status >= 500 or status = 429\n| limit 10000",
  "pattern @message",
  "fields @timestamp, @message | unmask(@message)",
];

/** Invalid queries and a word of the reason each is refused. */
const INVALID: [string, RegExp][] = [
  ["", /empty query/],
  ["fields", /expected a value/],
  ["fields @timestamp | filtr a = 1", /expected a command/],
  ["filter a = 1 | sort x dsc", /expected "\|"/],
  ['filter a = "unterminated', /unterminated string/],
  ["filter a in [1, 2", /expected "\]"/],
  ["filter a in (1, 2)", /expected "\["/],
  ["filter @message like /a(b/", /does not compile/],
  ["filter @message like /abc", /unterminated regular expression/],
  ["filter @message like /abc/i", /no trailing flags/],
  ["filter x", /expected a comparison/],
  ["filter a == 1", /expected a value/],
  ["filter count(*) > 1", /aggregate functions belong in stats/],
  ["stats x by y", /not an aggregate/],
  ["stats count(*) by bin(5)", /bin\(\) takes a duration/],
  ["stats pct(latency) as p", /pct\(\) takes 2 argument/],
  ["stats nosuch(x)", /unknown function nosuch/],
  ["stats count(*) as n by host | sort sessions desc", /sessions does not exist after stats/],
  ["stats count(*) as n, sum(x) as n", /output field n twice/],
  ["limit 0", /limit must be 1 to 10000/],
  ["limit 10001", /limit must be 1 to 10000/],
  ["limit ten", /limit takes an integer/],
  ['parse @message "* - *" as a', /2 "\*" for 1 name/],
  ["parse @message /(\\w+)/", /named groups/],
  ["fields a |", /expected a command/],
  ["fields a | | limit 1", /expected a command/],
  ["fields a $ b", /unexpected character/],
  ["fields `unterminated", /unterminated `field name`/],
];

describe("Logs Insights grammar", () => {
  it.each(VALID)("accepts %s", (q) => {
    expect(checkQuery(q)).toEqual([]);
  });

  it.each(INVALID)("refuses %j", (q, reason) => {
    const problems = checkQuery(q);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(reason);
  });

  it("parses into commands (what the checker understood)", () => {
    const [fields, filter, stats, sort, limit] = parseQuery(renderQuery(QUERIES.HangHosts));
    expect([fields?.cmd, filter?.cmd, stats?.cmd, sort?.cmd, limit?.cmd]).toEqual([
      "fields",
      "filter",
      "stats",
      "sort",
      "limit",
    ]);
    expect(stats?.cmd === "stats" && stats.by.length).toBe(7);
    expect(limit).toEqual({ cmd: "limit", n: 10_000 });
  });
});

describe("every query the project ships", () => {
  let template: Parameters<typeof templateQueries>[0];
  beforeAll(() => {
    template = synthOnce().template.toJSON() as typeof template;
  }, 120_000);

  const all = (): ShippedQuery[] => [
    ...templateQueries(template),
    ...dashboardQueries(template),
    ...enrichmentQueries(),
    ...docQueries(),
  ];

  it("finds them all: one saved query per catalog query, the enrichment's, the docs' blocks", () => {
    expect(templateQueries(template)).toHaveLength(Object.keys(QUERIES).length);
    expect(enrichmentQueries()).toHaveLength(Object.keys(QUERIES).length);
    // docs/alarms.md shows the drill's hang-hosts query as a Logs Insights block.
    const hang = docQueries().filter((q) => q.where.startsWith("docs/alarms.md"));
    expect(hang.map((q) => q.text)).toEqual([renderQuery(QUERIES.HangHosts)]);
  });

  it("parses every one of them", () => {
    const bad = all()
      .map((q) => ({ ...q, problems: checkQuery(q.text) }))
      .filter((q) => q.problems.length > 0);
    expect(bad).toEqual([]);
  });

  it("refuses every one of them broken three ways (the check can fail)", () => {
    for (const q of all()) {
      const broken = [
        q.text.replace("|", ""), // two commands run together
        q.text.replace(/\b(filter|stats|fields)\b/, "$1s"), // a misspelt command
        `${q.text}\n| sort`, // a command without its operand
      ];
      for (const b of broken) expect(checkQuery(b), `${q.where}: ${b}`).not.toEqual([]);
    }
  });

  it("reads a dashboard's log widgets (SOURCE prefix dropped) and finds none in ours today", () => {
    const body = {
      widgets: [
        { type: "metric", properties: { title: "m" } },
        {
          type: "log",
          properties: {
            title: "hangs",
            query: "SOURCE 'a' | SOURCE 'b' | fields @message | limit 5",
          },
        },
      ],
    };
    const t = {
      Resources: {
        D: {
          Type: "AWS::CloudWatch::Dashboard",
          Properties: { DashboardBody: { "Fn::Join": ["", [JSON.stringify(body)]] } },
        },
      },
    };
    expect(dashboardQueries(t)).toEqual([
      { where: 'D widget "hangs"', text: "fields @message | limit 5" },
    ]);
    expect(dashboardQueries(template)).toEqual([]);
  });

  it("marks doc blocks by their fence only", () => {
    const md = "```logs-insights\nfields a\n```\n\n```sh\nfilter x\n```\n\n~~~cwl\nlimit 1\n~~~\n";
    expect(markdownQueries(md, "x.md").map((q) => q.text)).toEqual(["fields a", "limit 1"]);
  });

  it("names only saved queries that exist (runbooks and docs)", async () => {
    const { readFileSync } = await import("node:fs");
    const ids = new Set(Object.values(QUERIES).map((s) => s.id));
    const named = docFiles().flatMap((f) =>
      [...readFileSync(f, "utf8").matchAll(/bounded-ssh-<stage>\/([a-z0-9-]+)/g)].map((m) => ({
        f,
        id: m[1] as string,
      })),
    );
    expect(named.length).toBeGreaterThan(10);
    expect(named.filter((n) => !ids.has(n.id))).toEqual([]);
  });
});

describe("the drill's fake Logs endpoint", () => {
  let logs: FakeLogs;
  let client: CloudWatchLogsClient;
  beforeAll(async () => {
    logs = await FakeLogs.start();
    client = new CloudWatchLogsClient({ ...FAKE_CLIENT_CONFIG, endpoint: logs.endpoint });
  });
  afterAll(async () => {
    client.destroy();
    await logs.close();
  });

  const start = (queryString: string) =>
    client.send(
      new StartQueryCommand({ logGroupNames: ["g"], queryString, startTime: 0, endTime: 1 }),
    );

  it("refuses an invalid query with the checker's reason, as the service does", async () => {
    const broken = renderQuery(QUERIES.HangHosts).replace("sort sessions", "sort session");
    await expect(start(broken)).rejects.toMatchObject({
      name: "MalformedQueryException",
      message: expect.stringMatching(/session does not exist after stats/),
    });
    expect(logs.refused).toContain(broken);
  });

  it("answers a catalog query", async () => {
    const { queryId } = await start(renderQuery(QUERIES.HangHosts));
    expect(queryId).toBeTruthy();
  });
});
