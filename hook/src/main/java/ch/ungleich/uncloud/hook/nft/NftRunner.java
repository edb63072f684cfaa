package ch.ungleich.uncloud.hook.nft;

/** The edge to nftables: applies one script as one atomic transaction. */
public interface NftRunner {
  /**
   * Runs the script with {@code nft -f -}. Either all of it is applied or none of it.
   *
   * @throws ch.ungleich.uncloud.hook.UncloudException with {@code APPLY_FAILED} and nft's error on one
   *     line when nft refuses the script, cannot be run, or does not finish in time
   */
  void apply(String script);

  /** Runs {@code nft} with arguments (e.g. {@code -j list table bridge uncloud}) and returns stdout. */
  String run(String... args);

  /**
   * Loads {@code script} into an empty scratch network namespace and returns
   * {@code nft -j list table bridge uncloud} from there: the script as nft stores it, to compare with
   * what is installed ({@link NftState}). Changes nothing on the host. CLI only (needs CAP_SYS_ADMIN).
   *
   * @throws ch.ungleich.uncloud.hook.UncloudException with {@code APPLY_FAILED} when nft refuses the
   *     script or the namespace cannot be made
   */
  /**
   * The nf_tables generation of the network namespace nft works in ({@link NftGeneration}): the same
   * text means no transaction committed in between. Empty when it cannot be known; then reconcile always
   * lists and compares.
   */
  default java.util.Optional<String> generation() {
    return java.util.Optional.empty();
  }

  /**
   * What decides how a script is planned, stored and listed besides the script: the nft binary and this
   * program's own code. A reconcile fingerprint made by another version never matches.
   */
  default String identity() {
    return getClass().getName();
  }

  default String canonical(String script) {
    throw new UnsupportedOperationException(getClass().getSimpleName() + " cannot canonicalise scripts");
  }

  /**
   * Like {@link #canonical}, for the inbound tables ({@link InboundScript}): loads {@code script} into
   * an empty scratch network namespace and returns {@code nft -j -p list table bridge uncloud-inbound}
   * and {@code ... inet uncloud-inbound} from there, one JSON document after the other.
   */
  default String canonicalInbound(String script) {
    throw new UnsupportedOperationException(getClass().getSimpleName() + " cannot canonicalise scripts");
  }
}
