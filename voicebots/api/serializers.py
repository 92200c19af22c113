from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know or that cannot be set, so nothing sent is silently ignored."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        read_only = sorted(name for name in data if name in self.fields and self.fields[name].read_only)
        if unknown or read_only:
            raise serializers.ValidationError({**{name: ["Unknown field."] for name in unknown},
                                               **{name: ["Read-only: it cannot be set."] for name in read_only}})
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    pass
