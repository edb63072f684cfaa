package ch.ungleich.uncloud.hook.source;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * One line of etcd v3's JSON watch stream ({@code POST /v3/watch}), as etcd 3.4's gateway writes it:
 *
 * <pre>
 * {"result":{"header":{...,"revision":"5"},"created":true}}
 * {"result":{"header":{...,"revision":"7"},"events":[{"kv":{"key":"..","mod_revision":"6","value":".."}},
 *                                                    {"type":"DELETE","kv":{"key":"..","mod_revision":"7"}}]}}
 * {"result":{"header":{...},"canceled":true,"compact_revision":"4"}}      (the start revision was compacted)
 * {"error":{"grpc_code":14,"http_code":503,"message":"...","http_status":"Service Unavailable"}}
 * </pre>
 *
 * Pure: {@link #parse} reads one line; keys and values are base64 there and decoded here.
 *
 * @param revision the header's revision (0 when absent)
 * @param created the watch was accepted
 * @param canceled etcd ended the watch (with {@code compactRevision} > 0: because of a compaction)
 * @param compactRevision the oldest revision etcd still has, when the requested one is older; else 0
 * @param error the error etcd reported instead of a result, or null
 * @param events the changes, in revision order
 */
public record WatchMessage(
    long revision, boolean created, boolean canceled, long compactRevision, String error, List<Event> events) {

  private static final JsonFactory JSON = new JsonFactory();

  /**
   * One change of a key.
   *
   * @param key the key
   * @param value its new value; null for a deletion
   * @param modRevision the revision of the change
   */
  public record Event(String key, String value, long modRevision) {}

  /**
   * Parses one line of the stream.
   *
   * @throws IllegalArgumentException not a watch message (the caller drops the connection)
   */
  public static WatchMessage parse(String line) {
    long revision = 0;
    boolean created = false;
    boolean canceled = false;
    long compact = 0;
    String error = null;
    List<Event> events = new ArrayList<>();
    try (JsonParser p = JSON.createParser(line)) {
      if (p.nextToken() != JsonToken.START_OBJECT) {
        throw new IllegalArgumentException("not a JSON object");
      }
      boolean any = false;
      while (p.nextToken() == JsonToken.FIELD_NAME) {
        String top = p.currentName();
        JsonToken t = p.nextToken();
        if (top.equals("result") && t == JsonToken.START_OBJECT) {
          any = true;
          while (p.nextToken() == JsonToken.FIELD_NAME) {
            String f = p.currentName();
            JsonToken v = p.nextToken();
            switch (f) {
              case "header" -> revision = v == JsonToken.START_OBJECT ? EtcdClient.revision(p) : 0;
              case "created" -> created = v == JsonToken.VALUE_TRUE;
              case "canceled" -> canceled = v == JsonToken.VALUE_TRUE;
              case "compact_revision" -> compact = Long.parseLong(p.getText());
              case "cancel_reason" -> error = p.getText();
              case "events" -> {
                if (v != JsonToken.START_ARRAY) {
                  throw new IllegalArgumentException("events is not an array");
                }
                while (p.nextToken() == JsonToken.START_OBJECT) {
                  events.add(event(p));
                }
              }
              default -> p.skipChildren();
            }
          }
        } else if (top.equals("error")) {
          any = true;
          error = t == JsonToken.START_OBJECT ? message(p) : p.getText();
        } else {
          p.skipChildren();
        }
      }
      if (!any) {
        throw new IllegalArgumentException("neither a result nor an error");
      }
    } catch (IOException e) {
      throw new IllegalArgumentException("not JSON: " + String.valueOf(e.getMessage()).lines().findFirst().orElse(""), e);
    }
    return new WatchMessage(revision, created, canceled, compact, error, List.copyOf(events));
  }

  private static Event event(JsonParser p) throws IOException {
    boolean delete = false;
    String key = null;
    String value = "";
    long mod = 0;
    while (p.nextToken() == JsonToken.FIELD_NAME) {
      String f = p.currentName();
      JsonToken t = p.nextToken();
      if (f.equals("type")) {
        delete = p.getText().equals("DELETE");
      } else if (f.equals("kv") && t == JsonToken.START_OBJECT) {
        while (p.nextToken() == JsonToken.FIELD_NAME) {
          String k = p.currentName();
          p.nextToken();
          switch (k) {
            case "key" -> key = unb64(p.getText());
            case "value" -> value = unb64(p.getText());
            case "mod_revision" -> mod = Long.parseLong(p.getText());
            default -> p.skipChildren();
          }
        }
      } else {
        p.skipChildren();
      }
    }
    if (key == null) {
      throw new IllegalArgumentException("an event without a key");
    }
    return new Event(key, delete ? null : value, mod);
  }

  private static String message(JsonParser p) throws IOException {
    String m = "";
    while (p.nextToken() == JsonToken.FIELD_NAME) {
      String f = p.currentName();
      p.nextToken();
      if (f.equals("message")) {
        m = p.getText();
      } else {
        p.skipChildren();
      }
    }
    return m;
  }

  private static String unb64(String s) {
    return new String(Base64.getDecoder().decode(s), StandardCharsets.UTF_8);
  }
}
