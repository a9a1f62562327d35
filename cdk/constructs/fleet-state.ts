import { RemovalPolicy, Validations } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";
import type { ErrorName } from "../../lib/names.ts";
import { DEFAULT_BREAKER, DEFAULT_IDEMPOTENCY_TTL_SECONDS } from "../../operations/fleet-state.ts";
import { HANDLER_ENV } from "../config.ts";

/**
 * The DynamoDB actions the functions use, per table (least privilege, issue 23): Powertools'
 * DynamoDBPersistenceLayer sends Get/Put/Update/DeleteItem (its `lib/esm/persistence/
 * DynamoDBPersistenceLayer.js`), functions/breaker/host-breaker.ts Get/Update/DeleteItem.
 * Nothing reads a table whole: no Scan, Query, Batch* or stream read, so one compromised
 * container cannot dump every caller's recorded output. A new call in either module needs its
 * action here (test/cdk/stack.test.ts pins the synthesized set).
 */
export const IDEMPOTENCY_TABLE_ACTIONS = [
  "dynamodb:GetItem",
  "dynamodb:PutItem",
  "dynamodb:UpdateItem",
  "dynamodb:DeleteItem",
] as const;
export const BREAKER_TABLE_ACTIONS = [
  "dynamodb:GetItem",
  "dynamodb:UpdateItem",
  "dynamodb:DeleteItem",
] as const;

/** Properties of {@link FleetState}. */
export interface FleetStateProps {
  /** Functions that run sessions: they get, put, update and delete items of both tables. */
  readonly functions: readonly lambda.Function[];
  /** Lifetime of an idempotency record, seconds. @default 86400 */
  readonly idempotencyTtlSeconds?: number;
  /** Breaker: failures within the window that quarantine a host. @default 3 */
  readonly breakerThreshold?: number;
  /** @default 600 */
  readonly breakerWindowSeconds?: number;
  /** @default 900 */
  readonly breakerQuarantineSeconds?: number;
  /** Longest a half-open probe holds a host. @default 120 */
  readonly breakerProbeSeconds?: number;
  /** Error names that count against a host. @default BREAKER_ERRORS (handler default) */
  readonly breakerErrors?: readonly ErrorName[];
}

/**
 * What makes fleet runs trustworthy across retries and dead hosts: the idempotency table
 * (Powertools' DynamoDB persistence layer: key `id`, TTL `expiration`) and the per-host
 * breaker table (key `host` = `host:port`, TTL `expiresAt`). Both pay per request, with TTL,
 * point-in-time recovery off (their items are minutes to a day old by design).
 *
 * @example
 * const state = new FleetState(this, "FleetState", {
 *   functions: [apiFunction.function, taskFunction.function],
 *   breakerThreshold: 3,
 * });
 */
export class FleetState extends Construct {
  readonly idempotencyTable: dynamodb.Table;
  readonly breakerTable: dynamodb.Table;

  /**
   * @param scope the parent construct (the stack).
   * @param id the construct id; logical ids derive from it.
   * @param props the functions that read and write both tables, TTLs and breaker settings.
   */
  constructor(scope: Construct, id: string, props: FleetStateProps) {
    super(scope, id);
    this.idempotencyTable = new dynamodb.Table(this, "Idempotency", {
      partitionKey: { name: "id", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: "expiration",
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.breakerTable = new dynamodb.Table(this, "Breaker", {
      partitionKey: { name: "host", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: "expiresAt",
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    for (const table of [this.idempotencyTable, this.breakerTable]) {
      Validations.of(table).acknowledge({
        id: "AwsSolutions-DDB3",
        reason:
          "Items live minutes to a day (TTL) and are rebuilt by the next run: an idempotency record only prevents a repeat, a breaker item only saves a dial. A restore would bring back stale state.",
      });
    }
    for (const fn of props.functions) {
      // Item actions on each table's own ARN only (no index, no stream): see the lists above.
      iam.Grant.addToPrincipal({
        grantee: fn,
        actions: [...IDEMPOTENCY_TABLE_ACTIONS],
        resourceArns: [this.idempotencyTable.tableArn],
      });
      iam.Grant.addToPrincipal({
        grantee: fn,
        actions: [...BREAKER_TABLE_ACTIONS],
        resourceArns: [this.breakerTable.tableArn],
      });
      fn.addEnvironment(HANDLER_ENV.idempotencyTable, this.idempotencyTable.tableName);
      fn.addEnvironment(HANDLER_ENV.breakerTable, this.breakerTable.tableName);
      fn.addEnvironment(
        HANDLER_ENV.idempotencyTtlSeconds,
        String(props.idempotencyTtlSeconds ?? DEFAULT_IDEMPOTENCY_TTL_SECONDS),
      );
      fn.addEnvironment(
        HANDLER_ENV.breakerThreshold,
        String(props.breakerThreshold ?? DEFAULT_BREAKER.threshold),
      );
      fn.addEnvironment(
        HANDLER_ENV.breakerWindowSeconds,
        String(props.breakerWindowSeconds ?? DEFAULT_BREAKER.windowSeconds),
      );
      fn.addEnvironment(
        HANDLER_ENV.breakerQuarantineSeconds,
        String(props.breakerQuarantineSeconds ?? DEFAULT_BREAKER.quarantineSeconds),
      );
      fn.addEnvironment(
        HANDLER_ENV.breakerProbeSeconds,
        String(props.breakerProbeSeconds ?? DEFAULT_BREAKER.probeSeconds),
      );
      if (props.breakerErrors !== undefined) {
        fn.addEnvironment(HANDLER_ENV.breakerErrors, props.breakerErrors.join(","));
      }
    }
  }
}
