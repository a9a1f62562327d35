/** Types of the ajv standalone validator generated from `request-schema.ts`. */
export interface GeneratedValidatorError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}
export interface GeneratedValidator {
  (data: unknown): boolean;
  errors: GeneratedValidatorError[] | null;
}
export declare const validate: GeneratedValidator;
export default validate;
