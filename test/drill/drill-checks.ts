import { type DrillHost, type DrillReport, outcomeMatches, routeTopicArn } from "./drill.ts";

/** The alarms the drill's incident must fire, and only these. */
export const INTENDED = [
  // 6 distinct hosts hung mid-protocol (5 banner tarpits, 1 auth; the frozen host's
  // ConnectionLost came after its command started, so it is not one) of 22 distinct hosts
  // contacted (each its own name and address, all on port 22): ≥ 5 hosts and ≥ 1 %. Host
  // trouble: the fleet owners' route.
  "drill-BoundedSsh-HandshakeHangs",
  "drill-BoundedSsh-HandshakeHangs-Notify",
  // The auth host's three attempts (retried) reach the threshold of 3: fleet route too.
  "drill-BoundedSsh-AuthTimeouts",
  "drill-BoundedSsh-AuthTimeouts-Notify",
] as const;

/** What makes the drill pass; empty when it does. */
export function drillProblems(r: DrillReport): string[] {
  const problems: string[] = [];
  const fired = [...r.fired].sort();
  if (JSON.stringify(fired) !== JSON.stringify([...INTENDED].sort())) {
    problems.push(
      `fired ${JSON.stringify(fired)}, intended ${JSON.stringify([...INTENDED].sort())}`,
    );
  }
  // Every host's own outcome, baselines included: a baseline that ends otherwise (the
  // full-budget run ending CommandTimeout) means the drill measured something else.
  for (const [i, h] of r.hosts.entries()) {
    const res = r.results[i];
    if (!outcomeMatches(h, res)) {
      problems.push(
        `${h.role} host ${h.name} ended ${JSON.stringify(res ?? null)}, expected ${JSON.stringify(h.expect)}`,
      );
    }
  }
  if (r.results.length !== r.hosts.length) {
    problems.push(`${r.results.length} results for ${r.hosts.length} hosts`);
  }
  // Distinct hosts the way production has them: one name and one address each, one port.
  const distinct = (f: (h: DrillHost) => string) => new Set(r.hosts.map(f)).size;
  if (distinct((h) => h.name) !== r.hosts.length || distinct((h) => h.address) !== r.hosts.length) {
    problems.push("drill hosts share a name or an address");
  }
  if (distinct((h) => String(h.port)) !== 1) problems.push("drill hosts differ by port");
  // The hang alarm counts the 6 hung hosts of the 22 contacted: any other value means a rule
  // counts something else (sessions, ports, addresses).
  const hang = r.alarms.find((a) => a.name === "drill-BoundedSsh-HandshakeHangs");
  const hung = r.hosts.filter((h) => h.role === "tarpit" || h.role === "auth").length;
  const want = (100 * hung) / r.hosts.length;
  const got = hang?.values.at(-1);
  if (got === undefined || Math.abs(got - want) > 1e-6) {
    problems.push(
      `HandshakeHangs reads ${got} %, expected ${want} % (${hung} of ${r.hosts.length} hosts)`,
    );
  }
  if (r.queries.refused.length > 0) {
    problems.push(`the Logs endpoint refused queries: ${r.queries.refused.join(" ;; ")}`);
  }
  const fb = r.fullBudget;
  if (!fb.released)
    problems.push("the full-budget command was never released (it had not started)");
  if (!(fb.durationMs > 0.9 * fb.timeoutMs)) {
    problems.push(
      `the full-budget run used ${fb.durationMs} ms of ${fb.timeoutMs}: not past 90 %, so it does not prove the old rule wrong`,
    );
  }
  if (!(fb.slackMs >= 0)) problems.push(`the full-budget run overran (slack ${fb.slackMs} ms)`);
  // Nothing reaches this service's pager: the hosts are the fleet owners' problem.
  const paged = r.notifications.filter((n) => n.topicArn === routeTopicArn("page"));
  if (paged.length) problems.push(`paged: ${paged.map((n) => n.subject).join("; ")}`);
  // The plain alarm goes out first on the fleet topic; the hosts follow in a second one.
  const subject = "ALARM: drill-BoundedSsh-HandshakeHangs-Notify (fleet)";
  const fleet = r.notifications.filter((n) => n.topicArn === routeTopicArn("fleet"));
  const plain = fleet.find((n) => n.subject === subject);
  if (!plain) problems.push("no plain fleet notification for HandshakeHangs");
  const page = fleet.find((n) => n.subject === `${subject} - hosts`);
  if (!page) problems.push("no enriched fleet notification for HandshakeHangs");
  else if (plain && r.notifications.indexOf(plain) > r.notifications.indexOf(page)) {
    problems.push("the enrichment went out before the plain notification");
  }
  for (const n of [plain, page]) {
    if (
      n &&
      (n.attributes.severity !== "fleet" ||
        n.attributes.alarm !== "drill-BoundedSsh-HandshakeHangs")
    ) {
      problems.push(`attributes of "${n.subject}": ${JSON.stringify(n.attributes)}`);
    }
  }
  const expected: Record<string, [string, string]> = {
    tarpit: ["BannerTimeout", "banner"],
    auth: ["AuthTimeout", "auth"],
  };
  for (const h of r.hosts) {
    const want = expected[h.role];
    const entry = want
      ? `${h.name}:${h.port} (${h.address}) ${want[0]} in ${want[1]}`
      : `${h.name}:${h.port} `;
    if (want && !page?.message.includes(entry))
      problems.push(`the fleet notification does not name ${h.role} host: "${entry}"`);
    if (h.role === "freeze" && page?.message.includes(entry)) {
      problems.push("the fleet notification lists the host lost during its command as a hang");
    }
  }
  return problems;
}
