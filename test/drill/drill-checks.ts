import type { DrillReport } from "./drill.ts";

/** The alarms the drill's incident must fire, and only these. */
export const INTENDED = [
  // 5 distinct hosts hung mid-protocol (3 banner, 1 auth, 1 frozen after exec) ≥ 2.
  "drill-BoundedSsh-HandshakeHangs",
  // The one page for it.
  "drill-BoundedSsh-Page",
  // The auth host's three attempts (retried) reach the ticket threshold of 3.
  "drill-BoundedSsh-AuthTimeouts",
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
  // The plain page goes out first; the hosts follow in a second notification.
  const plain = r.notifications.find((n) => n.subject === "ALARM: drill-BoundedSsh-Page (page)");
  if (!plain) problems.push("no plain notification for the page");
  const page = r.notifications.find(
    (n) => n.subject === "ALARM: drill-BoundedSsh-Page (page) - hosts",
  );
  if (!page) problems.push("no enriched notification for the page");
  else if (plain && r.notifications.indexOf(plain) > r.notifications.indexOf(page)) {
    problems.push("the enrichment went out before the plain page");
  }
  const expected: Record<string, [string, string]> = {
    tarpit: ["BannerTimeout", "banner"],
    auth: ["AuthTimeout", "auth"],
    freeze: ["ConnectionLost", "exec"],
  };
  for (const h of r.hosts) {
    const want = expected[h.role];
    if (!want) continue;
    const entry = `127.0.0.1:${h.port} (127.0.0.1) ${want[0]} in ${want[1]}`;
    if (!page?.message.includes(entry))
      problems.push(`the page does not name ${h.role} host: "${entry}"`);
  }
  return problems;
}
