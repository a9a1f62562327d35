/** asl-validator 4 ships no types; the part the tests use. */
declare module "asl-validator" {
  interface Result {
    isValid: boolean;
    errors: { message: string }[];
    errorsText(separator?: string): string;
  }
  export default function aslValidator(definition: unknown): Result;
}
