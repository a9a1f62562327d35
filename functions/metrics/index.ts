/** CloudWatch metrics adapter (SPEC §7): publisher, EMF fallback, leak gauge, middy middleware. */
export * from "./emf.ts";
export * from "./leak-gauge.ts";
export * from "./middleware.ts";
export * from "./publisher.ts";
