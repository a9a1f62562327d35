import { type DrillReport, routeTopicArn } from "./drill.ts";

/** The alarms the drill's incident must fire, and only these. */
export const INTENDED = [
  // 6 distinct hosts hung mid-protocol (5 banner tarpits, 1 auth; the frozen host's
  // ConnectionLost came after its command started, so it is not one) of 8 distinct host:port
  // contacted (the healthy hosts share one sshd): ≥ 5
  // hosts and ≥ 1 %. Host trouble: the fleet owners' route.
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
  const fb = r.fullBudget;
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
      ? `127.0.0.1:${h.port} (127.0.0.1) ${want[0]} in ${want[1]}`
      : `127.0.0.1:${h.port} `;
    if (want && !page?.message.includes(entry))
      problems.push(`the fleet notification does not name ${h.role} host: "${entry}"`);
    if (h.role === "freeze" && page?.message.includes(entry)) {
      problems.push("the fleet notification lists the host lost during its command as a hang");
    }
  }
  return problems;
}
