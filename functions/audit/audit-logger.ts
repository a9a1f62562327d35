/**
 * The audit logger: Powertools Logger writing the SPEC §8 audit line (one JSON line per
 * invocation) and the stack of unexpected errors. The audit line's own fields are public
 * (alarms, saved queries, the Contributor Insights rule, the drill parse them): they are
 * written as they are, top level, beside Powertools' keys (`level`, `message`, `timestamp`,
 * `service`, `correlation_id`, the Lambda context keys, `xray_trace_id`).
 */

import { LogFormatter, Logger, LogItem, LogLevelThreshold } from "@aws-lambda-powertools/logger";
import type { LogAttributes, UnformattedAttributes } from "@aws-lambda-powertools/logger/types";
import type { Context } from "aws-lambda";

/**
 * Keeps `null` values: `"error": null`, `"target": null` are part of the audit line's field
 * set (Powertools' own item drops null and empty values).
 */
class KeepNullsLogItem extends LogItem {
  override prepareForPrint(): void {
    const kept: LogAttributes = {};
    for (const [key, value] of Object.entries(this.getAttributes())) {
      if (value !== undefined) kept[key] = value;
    }
    this.setAttributes(kept);
  }
}

/** Powertools' standard keys first, then the line's own fields, unchanged and unmerged. */
export class AuditLogFormatter extends LogFormatter {
  override formatAttributes(
    attributes: UnformattedAttributes,
    additionalLogAttributes: LogAttributes,
  ): LogItem {
    const context = attributes.lambdaContext;
    return new KeepNullsLogItem({
      attributes: {
        level: attributes.logLevel,
        message: attributes.message,
        timestamp: this.formatTimestamp(attributes.timestamp),
        service: attributes.serviceName,
        cold_start: context?.coldStart,
        function_name: context?.functionName,
        function_request_id: context?.awsRequestId,
        xray_trace_id: attributes.xRayTraceId,
        ...additionalLogAttributes,
      },
    });
  }
}

/** Options of {@link AuditLogger}. */
export interface AuditLoggerOptions {
  /** @default env `POWERTOOLS_SERVICE_NAME`, else `bounded-ssh` */
  serviceName?: string;
  /** Receives each line instead of stdout (tests, local mode). @default stdout */
  write?: (line: string) => void;
}

/**
 * Powertools Logger for the audit trail. {@link AuditLogger.audit} writes whatever the log
 * level, sampling or buffering says (an audit trail is not sampled); errors go through the
 * usual `error()`, with stack and cause formatted by Powertools.
 */
export class AuditLogger extends Logger {
  private readonly write: ((line: string) => void) | undefined;

  constructor(options: AuditLoggerOptions = {}) {
    super({
      serviceName: options.serviceName ?? process.env.POWERTOOLS_SERVICE_NAME ?? "bounded-ssh",
      logFormatter: new AuditLogFormatter(),
    });
    this.write = options.write;
  }

  /** Starts an invocation's lines: Lambda context keys, the request id as correlation id. */
  begin(context: Partial<Context>, correlationId: string | undefined): void {
    if (typeof context.awsRequestId === "string") this.addContext(context as Context);
    this.resetKeys();
    if (correlationId !== undefined) this.setCorrelationId(correlationId);
  }

  /** Writes one audit line (its `type` is the message), bypassing the log level. */
  audit(line: { type: string } & LogAttributes): void {
    const item = this.createAndPopulateLogItem(
      LogLevelThreshold.INFO,
      { message: line.type, ...line },
      [],
    );
    this.printLog(LogLevelThreshold.INFO, item);
  }

  protected override printLog(logLevel: number, log: LogItem): void {
    if (!this.write) {
      super.printLog(logLevel, log);
      return;
    }
    log.prepareForPrint();
    this.write(JSON.stringify(log.getAttributes(), this.getJsonReplacer()));
  }
}
