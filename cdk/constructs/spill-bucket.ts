import type { CfnElement } from "aws-cdk-lib";
import { Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { DEFAULT_SPILL_MAX_BYTES } from "../../lib/session/output-capture.ts";
import { HANDLER_ENV } from "../config.ts";

/** Key prefix of spilled streams (`functions/spill/s3-spill.ts` writes under it). */
export const SPILL_PREFIX = "spill/";

/** Properties of {@link SpillBucket}. */
export interface SpillBucketProps {
  /** Functions that run sessions: they may write spilled streams, nothing else. */
  readonly functions: readonly lambda.Function[];
  /**
   * `request`: only requests with `spill: true` under rules with `allowSpill`; `always`: every
   * stream over `maxOutputBytes`. @default "request"
   */
  readonly mode?: "request" | "always";
  /** Largest stream uploaded, bytes. @default 1 GiB */
  readonly maxBytes?: number;
  /** How long a spilled stream is kept. @default 30 days */
  readonly expiration?: Duration;
}

/**
 * Where full output goes when a stream outgrows `maxOutputBytes`: a private bucket (SSE-S3,
 * SSL only, no public access) whose objects expire, and incomplete multipart uploads with
 * them. The functions may only put (and abort) objects under {@link SPILL_PREFIX}: reading
 * spilled output is for operators and callers granted it outside this stack.
 *
 * @example
 * new SpillBucket(this, "Spill", {
 *   functions: [apiFunction.function, taskFunction.function],
 *   mode: "request",
 * });
 */
export class SpillBucket extends Construct {
  readonly bucket: s3.Bucket;

  /**
   * @param scope the parent construct (the stack).
   * @param id the construct id; logical ids derive from it.
   * @param props the functions that may write spilled streams, the mode, size and lifetime.
   */
  constructor(scope: Construct, id: string, props: SpillBucketProps) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, "Bucket", {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      lifecycleRules: [
        {
          expiration: props.expiration ?? Duration.days(30),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.bucket).acknowledge({
      id: "AwsSolutions-S1",
      reason:
        "Holds only spilled command output written by the functions, each object named by its invocation's request id, which the audit line records; access is also in CloudTrail.",
    });
    const bucketId = Stack.of(this).resolve(
      (this.bucket.node.defaultChild as CfnElement).logicalId,
    ) as string;
    for (const fn of props.functions) {
      this.bucket.grantPut(fn, `${SPILL_PREFIX}*`);
      fn.addEnvironment(HANDLER_ENV.spillBucket, this.bucket.bucketName);
      fn.addEnvironment(HANDLER_ENV.spillMode, props.mode ?? "request");
      fn.addEnvironment(
        HANDLER_ENV.spillMaxBytes,
        String(props.maxBytes ?? DEFAULT_SPILL_MAX_BYTES),
      );
      if (fn.role) {
        // The bucket's ARN renders as GetAtt or as a built string, depending on the stack.
        for (const resource of [
          `arn:<AWS::Partition>:s3:::<${bucketId}>/${SPILL_PREFIX}*`,
          `<${bucketId}.Arn>/${SPILL_PREFIX}*`,
        ]) {
          Validations.of(fn.role).acknowledge({
            id: `AwsSolutions-IAM5[Resource::${resource}]`,
            reason:
              "Spilled objects are named by date and request id at run time; the grant is put/abort under the spill prefix of the stack's own bucket.",
          });
        }
        Validations.of(fn.role).acknowledge({
          id: "AwsSolutions-IAM5[Action::s3:Abort*]",
          reason:
            "CDK's grantPut: AbortMultipartUpload removes the parts of a spill that failed or outgrew its limit.",
        });
      }
    }
  }
}
