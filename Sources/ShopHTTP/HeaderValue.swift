public import HTTPTypes

extension HTTPFields {
    /// What `self[name]` answers (the values of `name`'s fields, several joined with ", ", or
    /// `nil`), without that subscript's cost when the field is there: it joins through a lazy
    /// map that runs unspecialised, about 4,700 instructions a lookup of one field (callgrind,
    /// issue 31), here a scan of the fields. Several fields of one name are rare and still
    /// joined by the subscript.
    public func value(of name: HTTPField.Name) -> String? {
        var found: String?
        for field in self where field.name == name {
            guard found == nil else { return self[name] }
            found = field.value
        }
        return found
    }
}
