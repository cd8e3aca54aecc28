import type { IncomingHttpHeaders } from 'node:http';
import type { JobConfig, ProviderName } from '../config/types.js';

/** A push, the same whatever Git host sent it. Every field is validated data. */
export interface PushEvent {
  provider: ProviderName;
  deliveryId: string;
  /** The repository as the payload names it (`owner/name`). */
  repo: string;
  /** Full ref: `refs/heads/main` or `refs/tags/v1.2.0`. */
  ref: string;
  /** Set for `refs/heads/*`. */
  branch?: string;
  /** Set for `refs/tags/*`. */
  tag?: string;
  /** The commit pushed (40 or 64 lowercase hex). */
  sha: string;
  /** The commit the ref pointed to before (all zeros for a new ref). */
  before: string;
  pusher: string;
  /** The head commit's message, when the payload has it (for the skip marker). */
  message?: string;
}

/**
 * What a verified delivery asks for. One delivery may carry several pushes (Bitbucket sends
 * one entry per updated ref); `ignored` then says why the other refs of it deploy nothing.
 */
export type HookEvent =
  | { kind: 'push'; pushes: readonly PushEvent[]; ignored: readonly string[] }
  | { kind: 'event'; event: SignedEvent }
  | { kind: 'ignored'; reason: string }
  | { kind: 'invalid'; reason: string };

/** A verified event that is not a push (generic signed events): each job's `when` decides whether it runs. */
export interface SignedEvent {
  provider: ProviderName;
  deliveryId: string;
  /** The source the URL names: `/hooks/<provider>/<source>`. */
  source: string;
  /** The verified payload, parsed; only ever read as data. */
  payload: unknown;
}

/** A credential header, read and shape-checked before the body is looked at. */
export type CredentialCheck<C> = { ok: true; credential: C } | { ok: false; reason: string };

/**
 * One Git host. Core code never imports an adapter; the registry hands them in.
 * Order of use: readCredential (headers only) -> repositoryOf (bounded parse, to find
 * candidate jobs) -> verify (raw bytes, constant time, once per candidate secret) ->
 * interpret (only after verification).
 */
export interface ProviderAdapter<C = unknown> {
  readonly name: ProviderName;
  /**
   * Whether the host may send `application/x-www-form-urlencoded` with the JSON in a
   * `payload` field (GitHub's default content type). The signature still covers the raw body.
   */
  readonly formEncoded: boolean;
  /**
   * Deliveries name their source in the URL, `/hooks/<name>/<source>`: jobs are matched on it
   * instead of on a repository in the payload, and `dedupKey` and `interpret` are given it.
   */
  readonly sourceInPath?: boolean;
  /**
   * The bytes the signature covers, when not the raw body: Gitea and Forgejo sign the JSON
   * even when they deliver it form-encoded.
   */
  signedBytes?(raw: Buffer, payloadJson: string, form: boolean): Buffer;
  readCredential(headers: IncomingHttpHeaders): CredentialCheck<C>;
  /** Whether the delivery verifies against one of the job's secrets (constant time for each). */
  verify(body: Buffer, credential: C, job: JobConfig): boolean;
  repositoryOf(payload: unknown): string | undefined;
  /**
   * A delivery that only tests the hook and names no repository (Bitbucket Data Center's
   * `diagnostics:ping`, an organisation's GitHub ping): where every secret of the provider is
   * tried before parsing (at most 16 different ones), it is verified against them and answered
   * 200; with more, 401.
   */
  isProbe?(headers: IncomingHttpHeaders, payload: unknown): boolean;
  deliveryId(headers: IncomingHttpHeaders): string | undefined;
  /** What identifies a redelivery of the same delivery; undefined when the host sent no id. */
  dedupKey(headers: IncomingHttpHeaders, source?: string): string | undefined;
  interpret(headers: IncomingHttpHeaders, payload: unknown, deliveryId: string, source?: string): HookEvent;
  /**
   * Fan-out: the headers that relay a verified delivery to another receiver, signed with
   * that receiver's `secret` exactly as this host signs (`body` is the JSON payload).
   * Copies the host's event and delivery headers from `original`; nothing else of them.
   */
  relayHeaders(body: Buffer, secret: string, original: IncomingHttpHeaders, now: Date): Record<string, string>;
}
