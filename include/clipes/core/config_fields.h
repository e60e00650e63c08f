#pragma once
/// One field table per config struct. Beside each struct, its header defines
///
///   template <class C, class V>
///   config::FieldsOf<C, CrfConfig> visit_fields(C& c, V& v) {
///     v("iterations", c.iterations, "mean-field iterations");
///     v("image", c.image, "image the bilateral kernel sees");
///   }
///
/// and every tool that reads, writes or documents configs walks that table: the JSON reader and
/// writer (json_reader.h), `--help-config`. The JSON key is the table's key, a nested struct is a
/// nested object, so the JSON shape is the struct shape. A field's type decides its treatment:
/// bool, integers, floats, strings, vectors of these, enums with an `enum_names` table (below),
/// structs with their own visit_fields, and vectors of such structs. `config::kRequired` as a
/// fourth argument makes an absent key an error. This header holds no JSON.

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace clipes::config {

/// The return type of a `visit_fields` overload: void, for `T` and `const T` only.
template <class C, class T>
using FieldsOf = std::enable_if_t<std::is_same_v<std::remove_const_t<C>, T>>;

/// Whether absence of the key is an error.
enum class Presence { kOptional, kRequired };
inline constexpr Presence kRequired = Presence::kRequired;

/// An enum's JSON names: `constexpr auto enum_names(ResNetLayout) { return
/// config::EnumNames<ResNetLayout, 2>{{{"caffe", ResNetLayout::kCaffe}, ...}}; }` beside the enum
/// (found by argument-dependent lookup).
template <class E, std::size_t N>
using EnumNames = std::array<std::pair<std::string_view, E>, N>;

template <class T, class = void>
struct IsNamedEnum : std::false_type {};
template <class T>
struct IsNamedEnum<T, std::void_t<decltype(enum_names(std::declval<T>()))>> : std::true_type {};

/// The JSON name of an enum value.
template <class E>
std::string_view enum_name(E value) {
  for (const auto& [name, v] : enum_names(value)) {
    if (v == value) return name;
  }
  return "?";
}

/// The value named `text`, or std::nullopt.
template <class E>
std::optional<E> parse_enum(std::string_view text) {
  for (const auto& [name, v] : enum_names(E{})) {
    if (name == text) return v;
  }
  return std::nullopt;
}

/// `"a", "b" or "c"`: the allowed names, for messages; `alternative` (e.g. `empty`), when given,
/// is the last choice: `"a", "b" or empty`.
template <class E>
std::string enum_choices(std::string_view alternative = {}) {
  const auto names = enum_names(E{});
  const std::size_t count = names.size() + (alternative.empty() ? 0 : 1);
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) out += i + 1 == count ? " or " : ", ";
    if (i == names.size()) {
      out += alternative;
    } else {
      out += '"';
      out += names[i].first;
      out += '"';
    }
  }
  return out;
}

/// Whether `T` has a field table.
struct FieldProbe {
  template <class F>
  void operator()(std::string_view, F&, std::string_view, Presence = Presence::kOptional) {}
};
template <class T, class = void>
struct HasFields : std::false_type {};
template <class T>
struct HasFields<T, std::void_t<decltype(visit_fields(std::declval<T&>(),
                                                      std::declval<FieldProbe&>()))>>
    : std::true_type {};

}  // namespace clipes::config
